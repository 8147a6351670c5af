"""bench/concurrency.py's parts: plan, added figures, targets, scenarios, report, plot."""
