"""Rowloom's row engine, a library: workflow specs, sources, the run, results, sinks and the gateway router.

It imports nothing else of Rowloom's and no web, SQL-table or queue package.
"""
