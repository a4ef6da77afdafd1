"""Rowloom's row engine: workflow specs, sources, sinks and the gateway router (no web, SQL tables or queue)."""
