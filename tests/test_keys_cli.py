"""`cortex keys create|list|revoke` and `cortex usage`, with the keys file and with Redis,
and `[[keys]]` in the settings file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from cortex.access.keys import KEY_PREFIX, hash_key
from cortex.cli.main import cli
from cortex.sources import ConfigError, load_settings
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL
from tests.redis_server import RedisServer, running_redis

HI = [{"role": "user", "content": "hola"}]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    yield from running_redis()


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "cortex" / "keys.json"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def chat_status(gw: RunningGateway, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = orjson.dumps({"model": DEFAULT_MODEL, "messages": HI, "stream": False})
    return httpx.post(gw.url + "/api/chat", content=body, headers=headers, timeout=10).status_code


def eventually(check: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the gateway did not pick the change up"
        time.sleep(0.05)


def test_keys_in_a_file_created_listed_used_and_revoked(
    keys_file: Path, start_gateway: StartGateway
) -> None:
    env = {"CORTEX_KEYS_FILE": str(keys_file)}
    gw = start_gateway(keys_file=keys_file, keys_refresh=0.1)
    assert chat_status(gw, None) == 200  # no keys yet: open

    code, out, err = run(
        "keys", "create", "ci", "--rpm", "60", "--concurrent", "2",
        "--tokens-per-day", "100000", "--models", "llama3.2, qwen3", env=env,
    )  # fmt: skip
    assert code == 0, err
    key = out.strip()
    assert out == key + "\n" and key.startswith(KEY_PREFIX) and len(key) == 36
    assert "created" in err and "will not be shown again" in err
    stored = keys_file.read_text()
    assert hash_key(key) in stored and key not in stored
    assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
    entry = orjson.loads(stored)["keys"][0]
    assert entry["models"] == ["llama3.2", "qwen3"] and entry["rpm"] == 60

    code, out, err = run("keys", "list", env=env)
    assert code == 0
    assert out.splitlines()[1].split()[:5] == ["ci", "60", "2", "100000", "llama3.2,qwen3"]
    assert key not in out and hash_key(key) not in out

    assert run("keys", "create", "ci", env=env)[0] == 1  # the name is taken
    assert run("keys", "create", "bad name", env=env)[0] == 2
    assert run("keys", "create", "boss", "--admin", env=env)[0] == 0
    listed = {
        line.split()[0]: line.split() for line in run("keys", "list", env=env)[1].splitlines()
    }
    assert listed["boss"][5] == "yes" and listed["ci"][5] == "-"
    assert run("keys", "revoke", "boss", env=env)[0] == 0

    eventually(lambda: chat_status(gw, None) == 401)  # keys are on now
    assert chat_status(gw, key) == 403  # ...and this key may not use the fake's model

    code, _, err = run("keys", "revoke", "ci", env=env)
    assert code == 0 and "revoked" in err and "no keys are left" in err
    eventually(lambda: chat_status(gw, None) == 200)
    assert run("keys", "revoke", "ci", env=env)[0] == 1


def test_keys_in_redis_are_seen_by_every_instance(
    redis_server: RedisServer, start_gateway: StartGateway
) -> None:
    env = {"CORTEX_REDIS_URL": redis_server.url}
    code, out, err = run("keys", "create", "ci", "--rpm", "5", env=env)
    assert code == 0, err
    key = out.strip()
    assert "created in Redis" in err
    other = run("keys", "create", "web", env=env)[1].strip()
    both = [start_gateway(redis_url=redis_server.url, keys_refresh=0.1) for _ in range(2)]
    assert [chat_status(gw, key) for gw in both] == [200, 200]
    assert [chat_status(gw, None) for gw in both] == [401, 401]
    code, out, _ = run("keys", "list", env=env)
    assert "ci" in out and key not in out

    code, _, err = run("keys", "revoke", "ci", env=env)
    assert code == 0, err
    for gw in both:
        eventually(lambda gw=gw: chat_status(gw, key) == 401)
        assert chat_status(gw, other) == 200
    redis_server.stop()
    code, _, err = run("keys", "list", env=env)
    assert code == 1 and "cannot reach Redis" in err


def test_cortex_usage_reads_a_running_gateway(keys_file: Path, start_gateway: StartGateway) -> None:
    env = {"CORTEX_KEYS_FILE": str(keys_file)}
    key = run("keys", "create", "ci", env=env)[1].strip()
    gw = start_gateway(keys_file=keys_file)
    assert chat_status(gw, key) == 200
    assert chat_status(gw, key) == 200
    headers = {"Authorization": f"Bearer {key}"}
    eventually(  # the client has each answer a moment before the gateway has counted it
        lambda: (
            httpx.get(gw.url + "/cortex/usage", headers=headers).json()["tokens_today"]
            == {"ci": 58}
        )
    )

    code, out, err = run("usage", "--url", gw.url, "--key", key)
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split() == ["KEY", "MODEL", "REQUESTS", "PROMPT", "COMPLETION", "ERRORS"]
    assert row.split() == ["ci", DEFAULT_MODEL, "2", "52", "6", "0"]
    assert "tokens today: ci 58" in out

    code, out, _ = run("usage", "--url", gw.url, "--json", env={"CORTEX_API_KEY": key})
    assert code == 0 and orjson.loads(out)["tokens_today"] == {"ci": 58}
    code, _, err = run("usage", "--url", gw.url)
    assert code == 1 and "HTTP 401: missing API key" in err


def test_keys_tables_in_the_settings_file(tmp_path: Path, keys_file: Path) -> None:
    digest = hash_key("ctx-example")
    config = tmp_path / "cortex.toml"
    config.write_text(
        f'keys_file = "{keys_file}"\n\n'
        f'[[keys]]\nname = "ci"\nkey_hash = "sha256:{digest.upper()}"\nrpm = 60\n'
        'models = ["llama3.2"]\n'
    )
    settings = load_settings(config_file=config)
    assert settings.keys[0].key_hash == digest and settings.keys[0].rpm == 60
    code, out, _ = run("keys", "list", "--config", str(config))
    assert out.splitlines()[1].split()[:5] == ["ci", "60", "-", "-", "llama3.2"]
    assert run("keys", "create", "ci", "--config", str(config))[0] == 1
    code, _, err = run("keys", "revoke", "ci", "--config", str(config))
    assert code == 1 and "remove its [[keys]] table" in err

    config.write_text('[[keys]]\nname = "ci"\nkey_hash = "not-a-hash"\n')
    with pytest.raises(ConfigError, match="key_hash must be the SHA-256 of the key"):
        load_settings(config_file=config)


def test_cortex_chat_and_models_send_the_key(start_gateway: StartGateway) -> None:
    key = "ctx-" + "k" * 32
    gw = start_gateway(keys=[{"name": "me", "key_hash": hash_key(key)}])
    code, out, _ = run("models", "--url", gw.url, env={"CORTEX_API_KEY": key})
    assert code == 0 and DEFAULT_MODEL in out
    code, _, err = run("models", "--url", gw.url)
    assert code == 1 and "HTTP 401: missing API key" in err
    chat = subprocess.run(
        [sys.executable, "-m", "cortex", "chat", "hola", "--url", gw.url],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "CORTEX_API_KEY": key},
    )
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout == "Había una vez\n"
