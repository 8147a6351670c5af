"""The relays Córtex is compared with: nginx (the reference), the hand-written relay, a
Go reverse proxy built from bench/go/relay.go when Go is installed, and Python's floor
(bench/pipe_relay.py)."""

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
