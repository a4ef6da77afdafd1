"""Rowloom's data layer: what the API server and the workers share, with no web imports.

Settings, the database and its sessions, the SQLModel tables and the job state table, the queue client,
the job-record writers, and the process's gateway router with its limits shared through Redis.
"""
