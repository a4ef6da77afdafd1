"""The gateway: the router, its limits (shared through Redis too), and the OpenAI-compatible routes."""
