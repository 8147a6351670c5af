"""Wire formats: each module reads and writes one dialect, to and from ``cortex.chat``."""
