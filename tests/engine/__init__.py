"""The row engine, as a library: specs, sources, runs, results, sinks, estimates."""
