"""bench/relay.py's parts: the plan, scenarios (a) to (d), the dialect paths (e), the cost
fit, and the tables."""
