"""Soak: thousands of streams through Córtex with random upstream faults and clients leaving.

    .venv/bin/python bench/soak.py                      # 10 minutes, 32 clients at once
    .venv/bin/python bench/soak.py --duration 60 --concurrency 16
    .venv/bin/python bench/soak.py --quick              # the same: a minute, 16 clients

Córtex runs as subprocesses (``python -m cortex serve``), one in front of the fake model
server as Ollama and one as an OpenAI-compatible server; the fake (``tests/fakes``) runs
in this process and picks each request's behaviour by the model it names. Every client
asks in one of five framings (Ollama NDJSON, Ollama SSE, OpenAI SSE, and the non-streaming
form of each dialect) for an answer whose upstream misbehaves at random (cut lines and
characters, stalls, resets, early closes, garbage, error lines, error statuses) or not at
all, and some clients hang up at a random moment.

Each answer read to its end is judged by ``tests/invariant.py``: the whole answer, or an
explicit error. At the end, once everything has settled, it checks what Córtex holds:
its open file descriptors and memory against the baseline taken after a warm-up at full
load, and the upstream requests still open at the fake (a stalled one that nobody
closed). It exits 1 on any silent truncation (or other broken answer) or leak; ``--json``
writes every figure, with examples of each failure. Its parts are in bench/suites/soak/.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from harness.cli import parser, run
from suites.soak.report import print_report
from suites.soak.run import run as soak


def main() -> None:
    command = parser(__doc__, "a minute, 16 clients at once (--duration 60 --concurrency 16)")
    command.add_argument("--duration", type=float, help="seconds of load (default 600)")
    command.add_argument("--concurrency", type=int, help="clients at once (default 32)")
    command.add_argument(
        "--kinds",
        type=lambda s: s.split(","),
        default=["ollama", "openai"],
        help="upstream dialects, comma-separated (default ollama,openai)",
    )
    command.add_argument(
        "--disconnect-rate",
        type=float,
        default=0.1,
        help="share of clients that hang up early (default 0.1)",
    )
    command.add_argument(
        "--seed", type=int, default=None, help="random seed (default: a new one each run)"
    )
    command.add_argument("--json", help="write the report as JSON to this file")
    args = command.parse_args()
    duration, concurrency = (60, 16) if args.quick else (600, 32)
    args.duration = args.duration if args.duration is not None else duration
    args.concurrency = args.concurrency if args.concurrency is not None else concurrency
    if args.seed is None:
        args.seed = random.randrange(2**32)
    report = run(soak(args))
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False))
        print(f"written to {args.json}")
    sys.exit(1 if report["violations"] or report["leaks"] else 0)


if __name__ == "__main__":
    main()
