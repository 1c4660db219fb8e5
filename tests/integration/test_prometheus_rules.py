"""The Prometheus configuration and alerting rules in deploy/prometheus/, checked by promtool."""

from __future__ import annotations

import subprocess

from core.config import PROJECT_ROOT
from tests.support.tools import require_binary

DEPLOY = PROJECT_ROOT / "deploy" / "prometheus"
INSTALL = "apt-get install -y prometheus (Debian's package ships promtool)"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool", INSTALL)
    return subprocess.run([promtool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60)


def test_the_alerting_rules_are_valid() -> None:
    result = _promtool("check", "rules", "rules/krowoc.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_the_prometheus_config_is_valid() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_on_a_spike_and_a_slow_p95_and_not_before() -> None:
    result = _promtool("test", "rules", "tests/krowoc_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
