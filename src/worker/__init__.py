"""Rowloom's job workers: arq settings, the job executor, leases and heartbeats (see DESIGN.md)."""
