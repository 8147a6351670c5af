"""The deployment files (deploy/, Dockerfile) agree with Córtex: the chart's config loads,
its probes are routes that answer, its grace period outlasts the drain, and the compose file,
the systemd unit and the image speak only of settings Córtex reads. scripts/check-deploy runs
the schema checks; the chart's tests here need the helm it caches (they skip without it)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cortex.api.ops import router as ops_router
from cortex.config import Settings
from cortex.sources import ConfigError, load_settings
from tests.conftest import RunningGateway
from tests.fakes import FakeOllama

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "cortex"
EVERYTHING = CHART / "ci" / "everything-values.yaml"
TOOLS = Path(
    os.environ.get("CORTEX_TOOLS")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cortex" / "tools"
)
HELM = TOOLS / "helm-v4.1.4" / "helm"
ROUTES = {route.path for route in ops_router.routes}  # type: ignore[attr-defined]
# What Córtex reads from its environment besides CORTEX_<setting>.
OTHER_VARIABLES = {"CORTEX_CONFIG"}

needs_helm = pytest.mark.skipif(
    not HELM.exists(), reason=f"no helm at {HELM}: scripts/check-deploy fetches it"
)


def render(*flags: str) -> dict[str, dict[str, Any]]:
    """The chart rendered with these flags, by kind (one resource of each)."""
    done = subprocess.run(
        [str(HELM), "template", "t", str(CHART), *flags], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return {r["kind"]: r for r in yaml.safe_load_all(done.stdout) if r}


def refused(*flags: str) -> str:
    done = subprocess.run(
        [str(HELM), "template", "t", str(CHART), *flags], capture_output=True, text=True
    )
    assert done.returncode != 0, "the chart rendered values it should refuse"
    return done.stderr


def chart_settings(
    resources: dict[str, dict[str, Any]], tmp_path: Path, environ: dict[str, str]
) -> Settings:
    config = tmp_path / "cortex.toml"
    config.write_text(resources["ConfigMap"]["data"]["cortex.toml"])
    return load_settings({}, environ, config)


def container(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@needs_helm
def test_the_charts_default_config_is_one_ollama_and_listens_on_every_address(
    tmp_path: Path,
) -> None:
    resources = render()
    env = {e["name"]: e["value"] for e in container(resources)["env"]}
    assert env["CORTEX_HOST"] == "0.0.0.0"
    settings = chart_settings(resources, tmp_path, env)
    assert settings.host == "0.0.0.0" and settings.port == 4000
    assert [(b.name, b.kind, b.url) for b in settings.backend_list()] == [
        ("ollama", "ollama", "http://ollama:11434")
    ]
    assert settings.drain_timeout == 30


@needs_helm
def test_every_chart_option_renders_a_config_cortex_reads(tmp_path: Path) -> None:
    resources = render("-f", str(EVERYTHING))
    settings = chart_settings(resources, tmp_path, {"VLLM_API_KEY": "sk-vllm"})
    backends = settings.backend_list()
    assert [(b.name, b.kind, b.max_concurrent) for b in backends] == [
        ("gpu-a", "ollama", 4),
        ("vllm", "openai", 16),
        ("cpu", "ollama", None),
        ("backend-4", "anthropic", None),
    ]
    assert backends[0].models == ["llama3.2", "qwen3:8b"] and backends[0].weight == 2
    assert backends[0].keep_alive_max == "30m"
    assert backends[2].keep_alive_override == 0  # a zero the template once dropped
    assert backends[1].api_key is not None and backends[1].api_key.get_secret_value() == "sk-vllm"
    assert settings.aliases == {"claude-sonnet-4-5": "qwen3:8b", "claude-haiku-*": "llama3.2"}
    assert [(k.name, k.rpm, k.models) for k in settings.keys] == [("ci", 60, ["llama3.2"])]
    assert settings.allowed_hosts == ["cortex.example", "*.lan"]
    assert (settings.drain_timeout, settings.max_connections) == (120.5, 2000)
    # The user's own Secret: the chart makes none, and the pods read that one.
    assert "Secret" not in resources
    env_from = container(resources)["envFrom"]
    assert env_from == [{"secretRef": {"name": "cortex-secrets"}}]
    with pytest.raises(ConfigError, match="VLLM_API_KEY"):
        chart_settings(resources, tmp_path, {})


@needs_helm
def test_keys_go_to_the_secret_and_never_into_the_configmap() -> None:
    resources = render(
        "--set", "secret.redisUrl=redis://:hunter2@redis:6379/0",
        "--set", "upstreams[0].url=openai+http://vllm:8000",
        "--set", "upstreams[0].apiKey=sk-upstream-secret",
        "--set", "upstreams[0].apiKeyEnv=VLLM_API_KEY",
    )  # fmt: skip
    assert resources["Secret"]["stringData"] == {
        "CORTEX_REDIS_URL": "redis://:hunter2@redis:6379/0",
        "VLLM_API_KEY": "sk-upstream-secret",
    }
    config = resources["ConfigMap"]["data"]["cortex.toml"]
    assert "hunter2" not in config and "sk-upstream-secret" not in config
    assert 'api_key_env = "VLLM_API_KEY"' in config


@needs_helm
@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--set-json", 'upstreams=[{"name": "x"}]'], "upstreams: each needs a url"),
        (["--set-json", "upstreams=[]"], "upstreams: list at least one model server"),
        (["--set", "settings.port=5000"], "settings.port: set it through the chart's own value"),
        (["--set", "settings.aliases.a=b"], "settings.aliases: set it through"),
        (["--set", "settings.limits.rpm=5"], "must be a scalar or a list, not a table"),
        (["--set", "upstreams[0].apiKey=k"], "has an apiKey but no apiKeyEnv"),
    ],
)
def test_the_chart_refuses_values_it_cannot_render(flags: list[str], reason: str) -> None:
    assert reason in refused(*flags)


@needs_helm
@pytest.mark.parametrize("values", [[], ["-f", str(EVERYTHING)]])
def test_the_grace_period_outlasts_the_presleep_and_the_drain(values: list[str]) -> None:
    resources = render(*values)
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    if values:
        chart_values.update(yaml.safe_load(EVERYTHING.read_text()))
    sleep = container(resources)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep == chart_values["preStopSleepSeconds"]
    # Córtex's server gives up drain_timeout + 2 s (rounded up) after SIGTERM (server.py).
    server_stops = math.ceil(chart_values["drainTimeout"]) + 2
    assert pod["terminationGracePeriodSeconds"] > sleep + server_stops


@needs_helm
def test_the_probes_are_routes_that_answer_with_the_charts_config(
    fake: FakeOllama, tmp_path: Path
) -> None:
    resources = render("--set", f"upstreams[0].url={fake.url}")
    spec = container(resources)
    probes = {kind: spec[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/health"
    assert probes["readinessProbe"]["path"] == "/ready"
    assert {p["port"] for p in probes.values()} == {spec["ports"][0]["name"]}
    settings = chart_settings(resources, tmp_path, {"CORTEX_HOST": "127.0.0.1", "CORTEX_PORT": "0"})
    with RunningGateway(settings) as running:
        for probe in probes.values():
            answer = httpx.get(running.url + probe["path"], timeout=10)
            assert answer.status_code == 200, (probe, answer.text)


@needs_helm
def test_the_service_monitor_scrapes_the_metrics_route_of_the_service() -> None:
    resources = render("-f", str(EVERYTHING))
    monitor, service = resources["ServiceMonitor"], resources["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] in ROUTES
    assert endpoint["authorization"]["credentials"] == {"name": "cortex-metrics-key", "key": "key"}
    assert "ServiceMonitor" not in render()


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "deploy" / "compose" / "compose.yaml").read_text())


def test_compose_gives_cortex_only_settings_it_reads() -> None:
    services = compose()["services"]
    cortexes = [s for s in services.values() if "cortex" in str(s.get("image"))]
    assert len(cortexes) == 2
    example = (ROOT / "deploy" / "compose" / "cortex.env.example").read_text()
    names = set(re.findall(r"^#? ?(CORTEX_[A-Z_]+)=", example, re.M))
    for service in cortexes:
        names |= set(service["environment"])
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        health = " ".join(service["healthcheck"]["test"])
        assert re.search(r"127\.0\.0\.1:4000(/\w+)", health)[1] in ROUTES  # type: ignore[index]
    known = {f"CORTEX_{name.upper()}" for name in Settings.model_fields} | OTHER_VARIABLES
    assert names - known == set()
    assert "CORTEX_REDIS_URL" in names and "CORTEX_HOST" in names


def test_compose_waits_for_the_drain_and_its_config_loads() -> None:
    config = ROOT / "deploy" / "compose" / "cortex.toml"
    settings = load_settings({}, {"CORTEX_HOST": "0.0.0.0"}, config)
    assert [b.url for b in settings.backend_list()] == ["http://ollama:11434"]
    for service in compose()["services"].values():
        if "cortex" in str(service.get("image")):
            grace = int(service["stop_grace_period"].removesuffix("s"))
            assert grace > settings.drain_timeout + 2


def test_the_systemd_unit_stops_after_the_drain_and_reads_its_config() -> None:
    unit = (ROOT / "deploy" / "systemd" / "cortex.service").read_text()
    directives = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    assert directives["KillSignal"] == "SIGTERM"
    stop = int(directives["TimeoutStopSec"].removesuffix("s"))
    assert stop > math.ceil(Settings().drain_timeout) + 2
    assert directives["ExecStart"].split()[1:] == ["serve", "--config", "/etc/cortex/cortex.toml"]
    assert directives["Restart"] == "on-failure"


def test_the_image_listens_on_every_address_explicitly_and_checks_health() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    final = dockerfile.rsplit("\nFROM ", 1)[1]  # the last stage is the image
    assert "CORTEX_HOST=0.0.0.0" in final
    assert "build-essential" not in final and "cmake" not in final
    health = re.search(r"^HEALTHCHECK .*?'(/\w+)'", final, re.M | re.S)
    assert health is not None and health[1] in ROUTES
    user = re.search(r"^USER (\d+):(\d+)$", final, re.M)
    assert user is not None and int(user[1]) != 0
    chart_user = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    assert chart_user["runAsUser"] == int(user[1])
    loaded = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "README.md" in loaded["project"]["readme"]  # .dockerignore keeps it for the build
    assert "!README.md" in (ROOT / ".dockerignore").read_text()
