"""Rowloom's job workers: the arq worker, the in-process runner, the job executor, claims, leases and heartbeats,
and the results store in the platform database."""
