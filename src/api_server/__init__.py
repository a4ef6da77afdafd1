"""Rowloom's API server: settings, database, services and the REST routes."""
