"""Ollama's API as a codec: its requests both ways, its NDJSON stream read and written."""
