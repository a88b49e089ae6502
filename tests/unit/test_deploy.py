"""The monitoring in the repository (deploy/, docker-compose.yml) agrees with the
code: the dashboard queries only metrics and labels the worker's registry has
and shows every one of them; Prometheus scrapes the worker's service on its web
port and path; Grafana's provisioning points at the files compose mounts and at
the Prometheus compose runs. No Docker engine is needed: the files are read.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from allocator.config import Settings
from streams.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "allocator.json"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"

# Series Prometheus adds itself, and the labels it puts on every scraped series.
PROMETHEUS_SERIES = {"up"}
TARGET_LABELS = {"instance", "job"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def yaml_module() -> Any:
    """PyYAML (the dev extra); without it the YAML checks skip, except under CI."""
    try:
        import yaml
    except ImportError:
        reason = "PyYAML is not installed (pip install pyyaml)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(reason)
    return yaml


def load_yaml(path: Path) -> Any:
    return yaml_module().safe_load(path.read_text())


def registry() -> dict[str, tuple[str, frozenset[str]]]:
    """Every series name the worker exposes -> (its family, its label names)."""
    metrics = Metrics()
    collectors = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    labels = {
        family.name: frozenset(collector._labelnames)
        for collector in collectors
        for family in collector.describe()
    }
    series = {}
    for family in metrics.registry.collect():
        extra = {"le"} if family.type == "histogram" else set()
        for suffix in SUFFIXES[family.type]:
            series[family.name + suffix] = (family.name, labels[family.name] | extra)
    return series


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row holds its own
    return found


def queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else str(query))
    return exprs


def used_labels(expr: str) -> set[str]:
    """Labels in by/without clauses and matchers, and label_values' label."""
    found: set[str] = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        found.update(name.strip() for name in group.split(",") if name.strip())
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        found.update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    found.update(re.findall(r"label_values\([^,]+,\s*(\w+)\)", expr))
    return found


def series_in(expr: str) -> set[str]:
    return set(re.findall(r"\ballocator_\w+", expr)) | {
        name for name in PROMETHEUS_SERIES if re.search(rf"\b{name}\{{", expr)
    }


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(ROOT / "docker-compose.yml")
    return loaded


def test_the_dashboard_queries_only_the_workers_metrics_and_labels(
    dashboard: dict[str, Any],
) -> None:
    known = registry()
    assert known, "Metrics() registered nothing"
    for expr in queries(dashboard):
        series = series_in(expr)
        assert series, f"no metric in {expr!r}"
        unknown = series - known.keys() - PROMETHEUS_SERIES
        assert not unknown, f"{expr!r} uses {sorted(unknown)}, not in streams/metrics.py"
        labels = set(TARGET_LABELS)
        for name in series & known.keys():
            labels |= known[name][1]
        assert used_labels(expr) <= labels, f"{expr!r}: labels {used_labels(expr) - labels}"


def test_the_dashboard_shows_every_metric_of_the_worker(dashboard: dict[str, Any]) -> None:
    known = registry()
    used = {name for expr in queries(dashboard) for name in series_in(expr)}
    shown = {known[name][0] for name in used - PROMETHEUS_SERIES}
    assert shown == {family for family, _ in known.values()}


def test_the_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["title"]
    for panel in panels(dashboard):
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"] and panel.get("description"), panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]


def test_the_dashboard_reads_the_provisioned_prometheus(
    dashboard: dict[str, Any], compose: dict[str, Any]
) -> None:
    (source,) = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    datasources = [p["datasource"] for p in panels(dashboard) if "datasource" in p]
    datasources += [t["datasource"] for p in panels(dashboard) for t in p.get("targets", [])]
    datasources += [v["datasource"] for v in dashboard["templating"]["list"]]
    assert {(d["type"], d["uid"]) for d in datasources} == {("prometheus", source["uid"])}
    # the URL is the compose service, on the port its command listens on (the default)
    address = re.fullmatch(r"http://([\w-]+):(\d+)", source["url"])
    assert address, source["url"]
    host, port = address.groups()
    assert host == "prometheus" and host in compose["services"]
    assert int(port) == 9090
    assert not any("web.listen-address" in a for a in compose["services"][host]["command"])


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A service's bind mounts from the repository: container path -> repository path."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = ROOT / source
    return found


def test_compose_provisions_grafana_with_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounted = mounts(grafana)
    assert mounted["/etc/grafana/provisioning"] == PROVISIONING
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "allocator.yml")["providers"]
    folder = mounted[provider["options"]["path"]]
    assert folder == DASHBOARD.parent and DASHBOARD.is_file()
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert mounted[str(home.parent)] / home.name == DASHBOARD
    assert "prometheus" in grafana["depends_on"]


def worker_port(compose: dict[str, Any]) -> int:
    """The port the compose worker serves /metrics on: a --web-port in its command
    (its own, else the Dockerfile's), else ALLOCATOR_WEB_PORT, else the default."""
    worker = compose["services"]["worker"]
    command = worker.get("command")
    if command is None:
        found = re.search(r"^CMD\s+(\[.*\])\s*$", (ROOT / "Dockerfile").read_text(), re.M)
        command = json.loads(found.group(1)) if found else []
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if "--web-port" in words:
        return int(words[words.index("--web-port") + 1])
    return int(worker.get("environment", {}).get("ALLOCATOR_WEB_PORT", Settings().web_port))


def test_prometheus_scrapes_the_worker_service_on_its_web_port(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    assert mounts(prometheus)[config_flag.split("=", 1)[1]] == PROMETHEUS

    (job,) = load_yaml(PROMETHEUS)["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert '@app.page("/metrics")' in (ROOT / "streams" / "web.py").read_text()
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery["type"] == "A"
    worker = compose["services"]["worker"]
    assert worker["build"] == "."  # the service is the worker this repository builds
    port = worker_port(compose)
    assert discovery["port"] == port
    assert str(port) in [str(p).split(":")[-1] for p in worker.get("ports", [])]
    # the dashboard's "workers up" counts this job
    ups = [e for e in queries(json.loads(DASHBOARD.read_text())) if "up{" in e]
    assert ups and all(f'job="{job["job_name"]}"' in e for e in ups)


def test_every_variable_the_compose_file_gives_the_worker_is_one_it_reads(
    compose: dict[str, Any],
) -> None:
    read = {f"ALLOCATOR_{name.upper()}" for name in Settings.model_fields}
    given = set(compose["services"]["worker"].get("environment", {}))
    assert given, "the worker is given no settings"
    assert given <= read, f"the worker never reads {sorted(given - read)}"


def test_the_compose_kafka_runs_the_tests_broker_settings(compose: dict[str, Any]) -> None:
    from streams.kafka_local import BROKER_PROPERTIES, KAFKA_VERSION, base_config, read_properties

    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    mounts = {v.split(":")[0]: v.split(":")[1] for v in kafka["volumes"] if v.startswith("./")}
    assert mounts["./kafka/broker.properties"] == "/mnt/shared/config/server.properties"
    shared = read_properties(BROKER_PROPERTIES)
    assert shared["auto.create.topics.enable"] == "false"
    # one source: no broker setting of the file is set again in the environment
    again = {
        key.removeprefix("KAFKA_").lower().replace("_", ".") for key in kafka.get("environment", {})
    }
    assert not again & set(shared), f"set twice: {sorted(again & set(shared))}"
    assert shared.items() <= base_config().items()  # the tests' brokers start from it
