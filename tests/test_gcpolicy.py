"""The serving process's garbage-collector policy (gcpolicy.py), in a process of its own:
freezing objects in the test process would keep them from every later collection."""

from __future__ import annotations

import subprocess
import sys

from cortex.gcpolicy import YOUNG_THRESHOLD

CHECK = """
import gc
from cortex.gcpolicy import settle_after_start
threshold = gc.get_threshold()
settle_after_start()
print(gc.get_freeze_count() > 1000, gc.get_threshold()[0], gc.get_threshold()[1:] == threshold[1:])
"""


def test_settling_after_start_freezes_start_up_objects_and_spaces_young_collections() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    frozen, young, older_unchanged = done.stdout.split()
    assert frozen == "True"
    assert int(young) == YOUNG_THRESHOLD
    assert older_unchanged == "True"
