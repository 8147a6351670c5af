"""bench/compare.py's parts: the plan and aims, the targets, the loads in rounds, the hang-ups,
the figures and their tables, and the plot."""
