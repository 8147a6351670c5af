"""OpenAI's chat completions as a codec: requests both ways, its SSE stream read and written."""
