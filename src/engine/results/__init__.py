"""Results: each finished row made durable before it counts, and how far in source order rows are settled."""
