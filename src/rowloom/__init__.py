"""The `rowloom` console script: the one place that composes the engine, the API server and the workers."""
