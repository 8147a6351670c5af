"""Streaming primitives: line decoding, the relay, and client encoders."""
