"""bench/soak.py's parts: the upstream's scenarios, Córtex under watch, the clients and their
tally, the run with its leak check, and the report.

The fake model server and the invariant come from the tests (``tests/fakes``,
``tests/invariant.py``): this package puts the checkout's root on the path for them."""

import sys

from harness.machine import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
