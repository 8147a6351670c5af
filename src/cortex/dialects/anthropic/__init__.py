"""Anthropic's Messages API as a codec: requests both ways, reader, writer, passthrough."""
