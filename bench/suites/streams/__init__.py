"""bench/streams.py's parts: the plan, the open-file limits, a checked stream, a wave of
streams, the runs (direct and through Córtex) and the report."""
