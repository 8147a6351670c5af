"""Client-facing HTTP APIs, one module per dialect."""
