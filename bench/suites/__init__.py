"""The parts of each benchmark, by concern: its plan, its scenarios, its report, its plot.

The scripts in bench/ (relay.py, compare.py, …) keep only their command line and the
order of the run; ``harness`` holds what they all share."""
