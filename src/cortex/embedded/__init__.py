"""The embedded model, run by llama.cpp in a supervised child process.

    gateway process                           child process (worker.py)
    backends/local.py ── supervisor.py ══ pipes ══ llama.cpp: load, self-test, generate

Native code never runs in the gateway: an illegal instruction, a segfault or the
kernel's OOM killer ends the child, whose answers in flight end with an explicit
error while the gateway keeps serving and restarts it. ``frames.py`` is the
little protocol on the pipes.
"""
