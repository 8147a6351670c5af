"""Which ``Host`` and ``Origin`` a request may carry: against DNS rebinding and cross-site POSTs.

Loopback is not a boundary for browsers. A page on ``attacker.example`` can make
its own name resolve to 127.0.0.1 (DNS rebinding) and then read Córtex as if
same-origin; any page can POST ``text/plain`` to it without a preflight and
start a generation it cannot read. So, as Ollama does:

- **Host.** Bound to a loopback address, Córtex answers only requests whose
  ``Host`` is a local name (``localhost``, ``*.localhost``, ``*.local``,
  ``*.internal``, this machine's names, the address it listens on) or a
  loopback, private or unspecified IP; bound to any other address, any host.
  ``allowed_hosts`` adds names (``*`` wildcards; ``["*"]`` allows any). An
  HTTP/1.1 request without ``Host``, or with two, is a 400.
- **Origin.** A request that carries an ``Origin`` (browsers add it to every
  cross-site POST) must come from the same origin or one of ``cors_origins``;
  any other gets a 403 and reaches no model server.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from ..errors import CortexError, dialect_of, reply

LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
REMEMBERED = 1024  # verdicts kept per distinct header value


def wildcard(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regular expression for patterns where ``*`` matches anything; None for none."""
    escaped = [re.escape(p.lower()).replace(r"\*", ".*") for p in patterns]
    return re.compile("|".join(escaped)) if escaped else None


def is_loopback_bind(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def machine_names() -> set[str]:
    names = {socket.gethostname().lower()}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn().lower())
    return {name for name in names if name}


class HostPolicy:
    """Decides whether a ``Host`` header (``name[:port]``) names this Córtex."""

    def __init__(self, bind: str, extra: Sequence[str]) -> None:
        self._any = "*" in extra or (not is_loopback_bind(bind) and not extra)
        self._names = {"localhost", bind.lower().strip("[]")} | machine_names()
        self._extra = wildcard(extra)
        self._verdicts: dict[bytes, bool] = {}

    def allows(self, header: bytes) -> bool:
        if self._any:
            return True
        verdict = self._verdicts.get(header)
        if verdict is None:
            verdict = self._decide(_host_name(header.decode("latin-1")).lower())
            if len(self._verdicts) >= REMEMBERED:
                self._verdicts.clear()
            self._verdicts[header] = verdict
        return verdict

    def _decide(self, name: str) -> bool:
        if not name or name in self._names or name.endswith(LOCAL_SUFFIXES):
            return True
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return self._extra is not None and self._extra.fullmatch(name) is not None
        return ip.is_loopback or ip.is_private or ip.is_unspecified


def _host_name(host: str) -> str:
    """``[::1]:4000`` → ``::1``; ``example:4000`` → ``example``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class HostGuard:
    """Refuse requests for a foreign ``Host`` or from a foreign ``Origin``: a check the
    pipeline makes first (``app.Pipeline``), not a layer of the request's await chain."""

    def __init__(self, bind: str, allowed_hosts: Sequence[str], origins: Sequence[str]) -> None:
        self._hosts = HostPolicy(bind, allowed_hosts)
        self._origins = wildcard(origins)

    def check(self, scope: Scope) -> Refusal | bytes | None:
        """An HTTP request's refusal, if it gets one; else its ``Origin``, if it has one."""
        hosts = 0
        host = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                hosts += 1
                host = value
            elif name == b"origin" and origin is None:
                origin = value
        if hosts > 1 or (not hosts and scope.get("http_version") == "1.1"):
            return Refusal(400, "a request needs exactly one Host header")
        if host is None:
            host = b""
        if not self._hosts.allows(host):
            return Refusal(403, "this host name is not allowed (see allowed_hosts in the README)")
        if origin is not None and not self._origin_allowed(origin, host):
            return Refusal(403, "requests from this origin are not allowed (see cors_origins)")
        return origin

    def _origin_allowed(self, origin: bytes, host: bytes) -> bool:
        text = origin.decode("latin-1").lower()
        if text.partition("://")[2] == host.decode("latin-1").lower():
            return True  # same origin: Córtex's own chat page
        return self._origins is not None and self._origins.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = CortexError(self.message, status=self.status)
        status, headers, body = reply(refusal, dialect_of(scope.get("path", "")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
