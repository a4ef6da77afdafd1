"""Jobs run by workers: the in-process runner and arq, control, claims, outages, inputs that crash readers."""
