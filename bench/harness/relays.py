"""The relays Córtex is compared with: nginx (the reference), the hand-written relay, a
Go reverse proxy built from bench/go/relay.go when Go is installed, Python's floor
(bench/pipe_relay.py), and LiteLLM's proxy, a gateway in Python, when it is installed."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from string import Template

from harness.machine import HERE, HOST
from harness.processes import Gateway, Processes, free_port, start_gateway

NGINX_CONF = Template("""\
worker_processes 1;
pid $dir/nginx-$port.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    upstream model { server $upstream; keepalive 128; }
    server {
        listen $host:$port;
        location / {
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
""")


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError("nginx is not installed: bench/run installs it (apt-get install nginx)")
    return found


async def start_nginx(procs: Processes, upstream_port: int, workdir: Path) -> Gateway:
    """nginx with ``proxy_buffering off`` and kept-alive upstream connections, its
    config and temporary paths in ``workdir``."""
    port = free_port()
    conf = workdir / f"nginx-{port}.conf"
    upstream = f"{HOST}:{upstream_port}"
    conf.write_text(NGINX_CONF.substitute(dir=workdir, port=port, host=HOST, upstream=upstream))
    argv = [nginx_binary(), "-p", str(workdir), "-c", str(conf), "-e", "stderr"]
    return await start_gateway(procs, [*argv, "-g", "daemon off;"], port)


async def start_handwritten(procs: Processes, upstream_port: int) -> Gateway:
    """bench/handwritten.py: FastAPI + httpx, the relay people write by hand."""
    port = free_port()
    argv = [sys.executable, str(HERE / "handwritten.py"), "--port", str(port)]
    argv += ["--upstream", f"http://{HOST}:{upstream_port}"]
    return await start_gateway(procs, argv, port)


async def start_pipe_relay(procs: Processes, upstream_port: int) -> Gateway:
    """bench/pipe_relay.py: bytes copied both ways on uvloop, no HTTP (Python's floor)."""
    port = free_port()
    argv = [sys.executable, str(HERE / "pipe_relay.py"), "--port", str(port)]
    argv += ["--upstream", f"{HOST}:{upstream_port}"]
    return await start_gateway(procs, argv, port)


async def start_go_relay(procs: Processes, upstream_port: int, workdir: Path) -> Gateway | None:
    """bench/go/relay.go (Go's standard ``httputil.ReverseProxy``, flushing every write),
    built into ``workdir`` and run with ``GOMAXPROCS=1``; none when Go is not installed
    (``apt-get install golang-go``)."""
    go = shutil.which("go")
    if go is None:
        return None
    binary = workdir / "go-relay"
    env = {**os.environ, "GOCACHE": str(workdir / "gocache"), "GOPATH": str(workdir / "gopath")}
    build = [go, "build", "-o", str(binary), str(HERE / "go" / "relay.go")]
    built = await asyncio.create_subprocess_exec(*build, env=env, cwd=workdir)
    if await built.wait() != 0:
        raise RuntimeError(f"go build failed: {' '.join(build)}")
    port = free_port()
    argv = [str(binary), "-listen", f"{HOST}:{port}", "-upstream", f"http://{HOST}:{upstream_port}"]
    return await start_gateway(procs, argv, port, env={"GOMAXPROCS": "1"})


LITELLM_CONFIG = Template("""\
model_list:
  - model_name: "*"
    litellm_params:
      model: "openai/*"
      api_base: "http://$host:$upstream/v1"
      api_key: "unused"
""")
# LiteLLM's proxy refuses to start without a master key unless told this is a local trial;
# the cost map is read from the package instead of fetched; only errors are logged.
LITELLM_ENV = {
    "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",
}


def litellm_binary() -> str | None:
    """LiteLLM's proxy command: ``$CORTEX_BENCH_LITELLM``, else ``litellm`` on the PATH."""
    return os.environ.get("CORTEX_BENCH_LITELLM") or shutil.which("litellm")


async def start_litellm(procs: Processes, upstream_port: int, workdir: Path) -> Gateway | None:
    """LiteLLM's proxy with one worker on the relays' CPU, every model name sent on to the
    fake's OpenAI-compatible ``/v1`` as it came; none when it is not installed. It is big
    (a few hundred packages): install it in a virtualenv of its own, ``python3 -m venv
    /tmp/litellm && /tmp/litellm/bin/pip install 'litellm[proxy]'``, and set
    ``CORTEX_BENCH_LITELLM=/tmp/litellm/bin/litellm``."""
    binary = litellm_binary()
    if binary is None:
        return None
    port = free_port()
    conf = workdir / f"litellm-{port}.yaml"
    conf.write_text(LITELLM_CONFIG.substitute(host=HOST, upstream=upstream_port))
    argv = [binary, "--config", str(conf), "--host", HOST, "--port", str(port)]
    return await start_gateway(procs, [*argv, "--num_workers", "1"], port, env=LITELLM_ENV)
