"""API keys: what a key may do, where keys are kept, and telling a presented key apart.

A key is ``ctx-`` and 32 random URL-safe characters; Córtex keeps only its
SHA-256 (a fast hash is enough for keys with 192 bits of entropy), shows the
key once when it is created, and never logs it. Keys come from the settings
(``[[keys]]`` tables, with ``key_hash``) and from a store: Redis when
``redis_url`` is set (shared by every instance), else a JSON file
(``keys_file``). A running gateway re-reads the store every
``keys_refresh`` seconds, so a created or revoked key takes effect that soon.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import orjson
from pydantic import ValidationError

from ..config import KeyRecord

logger = logging.getLogger("cortex.keys")

KEY_PREFIX = "ctx-"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)  # 32 characters, 192 random bits


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_record(name: str, key: str, **limits: object) -> KeyRecord:
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return KeyRecord.model_validate(
        {"name": name, "key_hash": hash_key(key), "created": created, **limits}
    )


class KeyStore(Protocol):
    """Where created keys live (the settings' ``[[keys]]`` are read-only)."""

    async def read(self) -> list[KeyRecord]: ...

    async def add(self, record: KeyRecord) -> bool:
        """Store a new key; False if one with that name exists."""
        ...

    async def remove(self, name: str) -> bool:
        """Forget a key; False if there was none by that name."""
        ...

    async def close(self) -> None: ...


def default_keys_file() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "cortex" / "keys.json"


class FileKeyStore:
    """Keys in a JSON file (``{"keys": [...]}``), written whole, readable by its owner only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def read(self) -> list[KeyRecord]:
        return self._read()

    async def add(self, record: KeyRecord) -> bool:
        with self._locked():
            records = self._read()
            if any(r.name == record.name for r in records):
                return False
            self._write([*records, record])
        return True

    async def remove(self, name: str) -> bool:
        with self._locked():
            records = self._read()
            kept = [r for r in records if r.name != name]
            if len(kept) == len(records):
                return False
            self._write(kept)
        return True

    async def close(self) -> None:
        pass

    def _read(self) -> list[KeyRecord]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise KeyFileError(f"cannot read the keys file {self.path}: {exc.strerror}") from None
        try:
            entries = orjson.loads(raw)["keys"]
            return [KeyRecord.model_validate(entry) for entry in entries]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
            raise KeyFileError(f"the keys file {self.path} is not valid: {exc}") from None

    def _write(self, records: list[KeyRecord]) -> None:
        body = {"keys": [r.model_dump(exclude_none=True) for r in records]}
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")
        os.replace(temporary, self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (two ``cortex keys create`` at once must not lose a key)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


class KeyFileError(ValueError):
    pass


class KeyRing:
    """The keys a running gateway accepts: the configured ones and the store's, kept fresh.

    ``identify`` hashes the presented key and compares it with every known hash
    in constant time (it does not stop at a match), so timing tells nothing
    about which hashes exist.
    """

    def __init__(
        self,
        configured: list[KeyRecord],
        store: KeyStore | None,
        refresh: float,
        on_store_error: Callable[[Exception], None],
        on_store_ok: Callable[[], None],
    ) -> None:
        self._configured = configured
        self._store = store
        self._refresh = refresh
        self._on_error = on_store_error
        self._on_ok = on_store_ok
        self._known: list[tuple[bytes, KeyRecord]] = []
        self.loaded = store is None  # the store was read at least once
        self._task: asyncio.Task[None] | None = None
        self._set(list(configured))

    @property
    def any(self) -> bool:
        return bool(self._known)

    def identify(self, presented: str) -> KeyRecord | None:
        digest = hash_key(presented).encode()
        found = None
        for known, record in self._known:
            if hmac.compare_digest(digest, known):
                found = record
        return found

    async def load(self, *, strict: bool = False) -> None:
        """Read the store again; ``strict`` (at start) raises on a broken keys file."""
        if self._store is None:
            return
        try:
            stored = await self._store.read()
        except KeyFileError as exc:
            if strict:
                raise
            logger.error("%s; keeping the keys read before", exc)
            return
        except Exception as exc:
            self._on_error(exc)
            return
        self._on_ok()
        self.loaded = True
        names = {r.name for r in self._configured}
        merged = self._configured + [r for r in stored if r.name not in names]
        if [r for _, r in self._known] != merged:
            twice = sorted(r.name for r in stored if r.name in names)
            if twice:
                logger.warning(
                    "keys in the settings and in the store: %s (the settings win)", twice
                )
            listed = ", ".join(r.name for r in merged) or "none"
            logger.info("API keys: %d (%s)", len(merged), listed)
        self._set(merged)

    def start(self) -> None:
        if self._store is not None:
            self._task = asyncio.create_task(self._keep_fresh())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._store is not None:
            await self._store.close()

    def _set(self, records: list[KeyRecord]) -> None:
        self._known = [(r.key_hash.encode(), r) for r in records]

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            await self.load()
