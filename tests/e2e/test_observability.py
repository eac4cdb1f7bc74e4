"""The chart's alerts and dashboard against a real Prometheus scraping a real operator.

Prometheus (tools/localcluster/prometheus.sh, in a state folder and on a port of this module's
own) scrapes the operator's /metrics on loopback every second and evaluates the PrometheusRule's
groups. Every dashboard and alert expression goes through its query API: a syntax error or an
unknown function fails, and expressions over the operator's metrics must return data once the
operator has reconciled a pool and a model.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import Cluster, h100_pool_spec
from harness import fresh_namespaces, running_operator
from operator_process import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gpupool"
PROMETHEUS_SH = ROOT / "tools" / "localcluster" / "prometheus.sh"
RELEASE = "chart-obs"
JOB = f"{RELEASE}-gpupool-metrics"  # the metrics Service's name: a ServiceMonitor's job label
ENGINE_METRIC = re.compile(r"\b(vllm:[a-z_:]+|nv_[a-z_]+|DCGM_[A-Z_]+|http_requests_total)")

pytestmark = pytest.mark.e2e


def rendered_monitoring() -> list[dict[str, Any]]:
    helm = subprocess.run([str(ROOT / "tools" / "helm.sh")], capture_output=True, text=True, check=True)
    out = subprocess.run(
        [
            helm.stdout.strip(),
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            "monitoring-test",
            "-f",
            str(CHART / "ci" / "monitoring-values.yaml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


class Prometheus:
    """tools/localcluster/prometheus.sh in a state folder and on a port of the caller's own.

    `start(config, web_config)` adds Prometheus' --web.config.file; `auth` (an Authorization
    header value) and `cafile` are then what `api` and `query` use to reach it.
    """

    def __init__(self, state_dir: Path, port: int) -> None:
        self.env = {**os.environ, "GPUPOOL_CLUSTER_DIR": str(state_dir), "GPUPOOL_PROMETHEUS_PORT": str(port)}
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.auth: str | None = None
        self.cafile: str | None = None

    def start(self, config: Path, web_config: Path | None = None) -> None:
        args = [str(PROMETHEUS_SH), "start", str(config), *([str(web_config)] if web_config else [])]
        result = subprocess.run(args, env=self.env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        tls = web_config is not None and "tls_server_config" in web_config.read_text()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        subprocess.run([str(PROMETHEUS_SH), "stop"], env=self.env, capture_output=True, check=False)

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET an API path; an HTTP error (bad_data for a broken query) is returned, not raised."""
        request = urllib.request.Request(f"{self.url}{path}?{urllib.parse.urlencode(params)}")
        if self.auth is not None:
            request.add_header("Authorization", self.auth)
        context = ssl.create_default_context(cafile=self.cafile) if self.url.startswith("https") else None
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as err:
            return dict(json.load(err))

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("/api/v1/query", query=expr)


@pytest.fixture(scope="module")
def setup(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    objects = rendered_monitoring()
    rule = next(o for o in objects if o["kind"] == "PrometheusRule")
    dashboard = next(o for o in objects if o["kind"] == "ConfigMap")
    work = tmp_path_factory.mktemp("observability")
    rules_file = work / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))

    cluster.install_crds()
    suffix = uuid.uuid4().hex[:6]
    pool, namespace = f"chart-obs-{suffix}", f"chart-obs-{suffix}"
    with ExitStack() as stack:
        stack.callback(cluster.kubectl, "delete", "inferencepool.gpupool.io", pool, check=False)
        operator = stack.enter_context(running_operator(cluster, work, resync_seconds=5))
        config = work / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules_file)],
                    "scrape_configs": [
                        {
                            "job_name": JOB,
                            "static_configs": [{"targets": [f"127.0.0.1:{operator.metrics_port}"]}],
                        }
                    ],
                }
            )
        )
        prometheus = Prometheus(work / "prometheus-state", free_port())
        prometheus.start(config)
        stack.callback(prometheus.stop)
        stack.enter_context(fresh_namespaces(cluster, namespace, models=False))
        cluster.apply(
            [
                {
                    "apiVersion": "gpupool.io/v1alpha1",
                    "kind": "InferencePool",
                    "metadata": {"name": pool},
                    "spec": h100_pool_spec(
                        pricePerAcceleratorHour=2.5,
                        tenants=[{"name": "team", "namespaces": [namespace], "maxAccelerators": 8}],
                    ),
                },
                {
                    "apiVersion": "gpupool.io/v1alpha1",
                    "kind": "ModelDeployment",
                    "metadata": {"name": "chat", "namespace": namespace},
                    "spec": {
                        "model": {"name": "llama-3.1-8b"},
                        "pool": pool,
                        "traffic": {"peakQps": 1},
                        "replicas": 1,
                    },
                },
            ]
        )
        selector = f'gpupool_model_ready_replicas{{namespace="{namespace}", name="chat"}} == 1'
        wait_for(
            "Prometheus sees the model ready",
            lambda: prometheus.query(selector).get("data", {}).get("result"),
            timeout=120,
        )
        # Counters need two samples inside a rate() window; let a few scrapes and resyncs pass.
        time.sleep(6)
        yield {
            "prometheus": prometheus,
            "rule": rule,
            "dashboard": json.loads(dashboard["data"]["gpupool.json"]),
            "namespace": namespace,
            "pool": pool,
            "operator": operator,
        }


def dashboard_queries(dashboard: dict[str, Any], namespace: str, pool: str) -> list[tuple[str, str]]:
    """(panel title, query) with Grafana's variables replaced as Grafana would."""
    variables = {"$namespace": namespace, "$pool": pool, "$job": JOB, "$__rate_interval": "1m"}
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"{panel['title']}: unknown variable in {expr}"
            queries.append((panel["title"], expr))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(metric, label) is Grafana's; the series behind it must exist.
            metric = re.match(r"label_values\((\w+), *(\w+)\)", variable["definition"])
            assert metric, variable["definition"]
            queries.append((f"variable {variable['name']}", f"count by ({metric[2]}) ({metric[1]})"))
    return queries


def test_every_dashboard_query_runs_and_operator_queries_return_data(setup: dict[str, Any]) -> None:
    prometheus: Prometheus = setup["prometheus"]
    queries = dashboard_queries(setup["dashboard"], setup["namespace"], setup["pool"])
    assert len(queries) >= 20
    empty = []
    for title, expr in queries:
        answer = prometheus.query(expr)
        assert answer["status"] == "success", f"{title}: {expr}: {answer.get('error')}"
        if not ENGINE_METRIC.search(expr) and not answer["data"]["result"]:
            empty.append(f"{title}: {expr}")
    assert empty == []


def test_every_alert_expression_runs(setup: dict[str, Any]) -> None:
    prometheus: Prometheus = setup["prometheus"]
    for group in setup["rule"]["spec"]["groups"]:
        for rule in group["rules"]:
            answer = prometheus.query(rule["expr"])
            assert answer["status"] == "success", f"{rule['alert']}: {answer.get('error')}"


def test_prometheus_loads_and_evaluates_every_rule(setup: dict[str, Any]) -> None:
    prometheus: Prometheus = setup["prometheus"]
    expected = sorted(r["alert"] for g in setup["rule"]["spec"]["groups"] for r in g["rules"])

    def evaluated() -> list[dict[str, Any]]:
        groups = prometheus.api("/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        done = all(not r["lastEvaluation"].startswith("0001") for r in rules)
        return rules if done and rules else []

    rules = wait_for("every rule evaluated", evaluated, timeout=30)
    assert sorted(r["name"] for r in rules) == expected
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []


def test_operator_alerts_are_quiet_while_the_operator_is_healthy(setup: dict[str, Any]) -> None:
    prometheus: Prometheus = setup["prometheus"]
    rules = {r["alert"]: r["expr"] for g in setup["rule"]["spec"]["groups"] for r in g["rules"]}
    for alert in ("GpupoolOperatorDown", "GpupoolReconcileErrors"):
        answer = prometheus.query(rules[alert])
        assert answer["data"]["result"] == [], alert
    mismatch = prometheus.query(rules["GpupoolModelReplicasMismatch"])["data"]["result"]
    assert [m["metric"] for m in mismatch if m["metric"].get("namespace") == setup["namespace"]] == []
    # The series the down alert watches exists and is up: a quiet alert is not a missing target.
    up = prometheus.query(f'up{{job="{JOB}"}}')["data"]["result"]
    assert [sample["value"][1] for sample in up] == ["1"]
