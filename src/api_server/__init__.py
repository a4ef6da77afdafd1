"""Rowloom's web app: the app factory, routes, dependencies, services, error mapping and middleware."""
