"""Deployment artefacts: docker-compose stack, Helm chart, Prometheus rules and the Dockerfile.

Offline checks only: `docker-compose config` (Debian's docker-compose), Helm's Go SDK through
helm-python-sdk (lint, schema, render), kubernetes-validate for every rendered manifest, and
`promtool` (Debian's prometheus) for the alert rules.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "maestro-gate"
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"

# A recent Kubernetes release that kubernetes-validate ships strict schemas for.
KUBE_VERSION = "1.34.0"

POSTGRES_OPA: dict[str, Any] = {
    "engine": "opa",
    "profile": "production",
    "replicaCount": 3,
    "audit": {"backend": "postgres", "postgres": {"existingSecret": "gate-audit", "dsnKey": "dsn"}},
    "secrets": {
        "apiKeys": {"existingSecret": "gate-auth", "key": "api-keys.json"},
        "checkpointKey": {"existingSecret": "gate-keys", "key": "checkpoint.pem"},
        "bundlePublicKey": {"existingSecret": "gate-keys", "key": "bundle.pub.pem"},
        "redisUrl": {"existingSecret": "gate-redis", "key": "url"},
    },
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
}

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "postgres-opa": POSTGRES_OPA,
    "postgres-autoscaled": {
        **POSTGRES_OPA,
        "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12},
        "networkPolicy": {
            "enabled": True,
            "egress": {
                "enabled": True,
                "postgres": {"port": 5432, "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]},
            },
        },
    },
    "embedded-engine": {"engine": "embedded", "persistence": {"enabled": False}},
    "bundle-service": {
        **POSTGRES_OPA,
        "policies": {
            "source": "bundleService",
            "bundleService": {
                "url": "https://bundles.example.internal",
                "resource": "bundles/maestro-gate.tar.gz",
                "credentialsSecret": "bundle-token",
                "verification": {
                    "keyId": "maestro",
                    "algorithm": "ES256",
                    "publicKey": "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----",
                },
            },
        },
    },
    "bundle-configmap": {"policies": {"source": "configMap", "configMap": {"name": "gate-bundle"}}},
}


# ---- helpers ------------------------------------------------------------------------------------


def render(values: dict[str, Any], chart_dir: Path = CHART) -> list[dict[str, Any]]:
    """Render the chart offline and return every Kubernetes object it produces."""
    with helm.Chart.load(chart_dir) as chart:
        manifests = chart.render(values, name="gate", namespace="maestro")
    objects: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single object of `kind` among `objects`."""
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Deployment's containers by name."""
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def compose_config(*extra_args: str) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose config` in a clean environment so host variables cannot leak in."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        ["docker-compose", *extra_args, "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def promtool() -> str:
    """Path of promtool, or skip when Debian's prometheus package is absent."""
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return path


# ---- docker-compose -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = compose_config("--env-file", str(COMPOSE_ENV_EXAMPLE))
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_config_is_valid_with_the_example_env(compose: dict[str, Any]) -> None:
    """`docker-compose config` accepts the stack with deploy/compose.env.example."""
    assert set(compose["services"]) == {"maestro-gate", "opa", "postgres", "prometheus"}


def test_compose_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    """The gate starts after OPA and PostgreSQL are healthy; Prometheus after the gate."""
    services = compose["services"]
    assert services["maestro-gate"]["depends_on"] == {
        "opa": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    assert services["prometheus"]["depends_on"] == {
        "maestro-gate": {"condition": "service_healthy"}
    }
    for name, service in services.items():
        assert service["healthcheck"]["test"], f"{name} has no health check"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/health?bundles" in " ".join(services["opa"]["healthcheck"]["test"])
    assert "/ready" in " ".join(services["maestro-gate"]["healthcheck"]["test"])
    assert services["postgres"]["image"] == "postgres:16"


def test_compose_gate_uses_opa_and_postgres(compose: dict[str, Any]) -> None:
    """The compose gate evaluates through the OPA server and audits to PostgreSQL."""
    gate = compose["services"]["maestro-gate"]
    env = gate["environment"]
    assert env["MAESTRO_GATE_ENGINE"] == "opa"
    assert env["MAESTRO_GATE_OPA_URL"] == "http://opa:8181"
    assert env["MAESTRO_GATE_AUDIT_DSN"].startswith("postgresql://maestro:")
    assert env["MAESTRO_GATE_AUDIT_DSN"].endswith("@postgres:5432/maestro_audit")
    assert env["MAESTRO_GATE_HOST"] == "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    assert gate["read_only"] is True
    assert gate["user"] == "10001:10001"
    assert gate["cap_drop"] == ["ALL"]
    assert {"source": "checkpoint_key"} in gate["secrets"]

    opa = compose["services"]["opa"]
    assert re.fullmatch(r"openpolicyagent/opa:1\.\d+\.\d+-static", opa["image"])
    assert opa["command"][:2] == ["run", "--server"]
    assert "--addr=0.0.0.0:8181" in opa["command"]
    assert opa["command"][-2:] == ["--bundle", "/policies"]
    assert any(v.endswith("/policies:/policies:ro") for v in opa["volumes"])


def test_compose_prometheus_loads_config_and_alert_rules(compose: dict[str, Any]) -> None:
    """Prometheus mounts deploy/prometheus/prometheus.yml and alerts.yml."""
    volumes = compose["services"]["prometheus"]["volumes"]
    for name in ("prometheus.yml", "alerts.yml"):
        mount = f"deploy/prometheus/{name}:/etc/prometheus/{name}:ro"
        assert any(v.endswith(mount) for v in volumes), name
    prometheus = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["maestro-gate"]["metrics_path"] == "/metrics"
    assert jobs["maestro-gate"]["static_configs"][0]["targets"] == ["maestro-gate:8080"]


def test_compose_refuses_to_start_without_secrets() -> None:
    """Without an env file, `docker-compose config` fails and names the missing variable."""
    result = compose_config()
    assert result.returncode != 0
    assert "set POSTGRES_USER in deploy/compose.env" in result.stderr


def test_compose_env_example_defines_every_required_variable() -> None:
    """Every `${VAR:?...}` in docker-compose.yml has a line in deploy/compose.env.example."""
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text()))
    defined = {
        line.split("=", 1)[0]
        for line in COMPOSE_ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert required
    assert required <= defined


# ---- Helm chart: lint, schema, render, validate -------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_chart_lints_clean(variant: str) -> None:
    """`helm lint --strict` reports no warning or error for each values variant."""
    report = helm.lint(CHART, VARIANTS[variant], strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == []
    assert problems == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_manifests_validate_against_kubernetes_schemas(variant: str) -> None:
    """Every rendered object validates (strict) against the Kubernetes OpenAPI schemas."""
    objects = render(VARIANTS[variant])
    assert objects
    for obj in objects:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            # A Prometheus Operator CRD: kubernetes-validate has no schema for it.
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
            assert obj["spec"]["endpoints"] == [
                {"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
            ]
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_default_values_pass_the_schema() -> None:
    """The chart's own values.yaml satisfies values.schema.json."""
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema({})
        assert chart.schema is not None
        assert chart.metadata["name"] == "maestro-gate"


def test_default_render_has_opa_sidecar_probes_and_restricted_security() -> None:
    """Defaults: gate + OPA sidecar, probes on /health, /ready, /health?bundles; non-root."""
    objects = render({})
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Service",
        "ServiceAccount",
    ]
    deployment = only(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    by_name = containers(deployment)
    assert list(by_name) == ["maestro-gate", "opa"]

    gate = by_name["maestro-gate"]
    assert gate["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert gate["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert gate["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}

    opa = by_name["opa"]
    assert opa["image"].startswith("openpolicyagent/opa:1.")
    assert opa["args"][:2] == ["run", "--server"]
    assert "--addr=127.0.0.1:8181" in opa["args"]
    assert opa["args"][-2:] == ["--bundle", "/policies"]
    assert opa["readinessProbe"]["httpGet"] == {"path": "/health?bundles", "port": "opa-diag"}
    assert opa["livenessProbe"]["httpGet"]["path"].startswith("/health")

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in [*pod["containers"], *pod.get("initContainers", [])]:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True, container["name"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, container["name"]
        assert sc.get("runAsUser", 1) != 0, container["name"]

    # The init container copies the image's bundle into the volume both containers read.
    assert [c["name"] for c in pod["initContainers"]] == ["policies"]
    settings = only(objects, "ConfigMap")["data"]
    assert settings["MAESTRO_GATE_ENGINE"] == "opa"
    assert settings["MAESTRO_GATE_OPA_URL"] == "http://127.0.0.1:8181"
    assert settings["MAESTRO_GATE_AUDIT_DSN"] == "sqlite:////var/lib/maestro-gate/audit.db"
    assert settings["MAESTRO_GATE_BUNDLE_DIR"] == "/policies"

    # SQLite: one replica, Recreate (one writer), the audit file on a PVC.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == "gate-maestro-gate-data"


def test_postgres_variant_scales_out_with_a_sidecar_per_pod() -> None:
    """PostgreSQL + OPA: N replicas, DSN from a Secret reference, PDB, rolling updates."""
    objects = render(POSTGRES_OPA)
    kinds = {o["kind"] for o in objects}
    assert "Secret" not in kinds, "the chart must reference secrets, never render them"
    assert "PersistentVolumeClaim" not in kinds
    assert {"PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy"} <= kinds

    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    gate = containers(deployment)["maestro-gate"]
    assert "opa" in containers(deployment)
    env = {e["name"]: e for e in gate["env"]}
    assert env["MAESTRO_GATE_AUDIT_DSN"]["valueFrom"]["secretKeyRef"] == {
        "name": "gate-audit",
        "key": "dsn",
    }
    assert env["MAESTRO_GATE_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "gate-redis"
    assert env["MAESTRO_GATE_CHECKPOINT_KEY_FILE"]["value"].startswith("/etc/maestro-gate/secrets/")
    assert env["MAESTRO_GATE_BUNDLE_PUBLIC_KEY_FILE"]["value"].startswith("/etc/maestro-gate/")
    assert env["MAESTRO_GATE_API_KEYS_FILE"]["value"].startswith("/etc/maestro-gate/secrets/")
    settings = only(objects, "ConfigMap")["data"]
    assert "MAESTRO_GATE_AUDIT_DSN" not in settings
    assert settings["MAESTRO_GATE_PROFILE"] == "production"

    pdb = only(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    egress = only(objects, "NetworkPolicy")["spec"]["egress"]
    egress_ports = [port["port"] for rule in egress for port in rule["ports"]]
    assert 5432 in egress_ports


def test_autoscaled_variant_renders_an_hpa_and_leaves_replicas_to_it() -> None:
    """With autoscaling on, an HPA targets the Deployment and the Deployment sets no replicas."""
    objects = render(VARIANTS["postgres-autoscaled"])
    hpa = only(objects, "HorizontalPodAutoscaler")
    deployment = only(objects, "Deployment")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert "replicas" not in deployment["spec"]
    assert only(objects, "PodDisruptionBudget")


def test_embedded_engine_runs_without_a_sidecar() -> None:
    """engine=embedded renders the gate alone, with no OPA container or OPA settings."""
    objects = render(VARIANTS["embedded-engine"])
    deployment = only(objects, "Deployment")
    assert list(containers(deployment)) == ["maestro-gate"]
    settings = only(objects, "ConfigMap")["data"]
    assert settings["MAESTRO_GATE_ENGINE"] == "embedded"
    assert "MAESTRO_GATE_OPA_URL" not in settings
    assert "opa-config.yaml" not in settings
    data = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert "emptyDir" in data


def test_bundle_service_variant_configures_opa_downloads() -> None:
    """policies.source=bundleService gives OPA a bundle service, polling and a verification key."""
    objects = render(VARIANTS["bundle-service"])
    opa_config = yaml.safe_load(only(objects, "ConfigMap")["data"]["opa-config.yaml"])
    assert opa_config["services"]["bundles"]["url"] == "https://bundles.example.internal"
    assert opa_config["services"]["bundles"]["credentials"]["bearer"]["token_path"]
    bundle = opa_config["bundles"]["maestro"]
    assert bundle["resource"] == "bundles/maestro-gate.tar.gz"
    assert bundle["signing"]["keyid"] == "maestro"
    assert opa_config["keys"]["maestro"]["algorithm"] == "ES256"
    deployment = only(objects, "Deployment")
    assert "initContainers" not in deployment["spec"]["template"]["spec"]
    assert "--bundle" not in containers(deployment)["opa"]["args"]


BAD_VALUES = {
    "sqlite with 3 replicas": ({"replicaCount": 3}, "/replicaCount"),
    "sqlite with autoscaling": ({"autoscaling": {"enabled": True}}, "/autoscaling/enabled"),
    "unknown engine": ({"engine": "wasm"}, "/engine"),
    "unknown audit backend": ({"audit": {"backend": "mysql"}}, "/audit/backend"),
    "postgres without DSN secret": (
        {"audit": {"backend": "postgres"}, "replicaCount": 2},
        "/audit/postgres/existingSecret",
    ),
    "production without credentials": ({"profile": "production"}, "/secrets"),
    "bundle service with embedded engine": (
        {
            "engine": "embedded",
            "policies": {
                "source": "bundleService",
                "bundleService": {"url": "https://b.example", "resource": "b.tar.gz"},
            },
        },
        "/engine",
    ),
    "root container": ({"securityContext": {"runAsNonRoot": False}}, "/securityContext"),
    "misspelt key": ({"replicas": 2}, "additional properties 'replicas'"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_values_schema_rejects_bad_values(case: str) -> None:
    """values.schema.json rejects values that cannot work, and rendering refuses them too."""
    values, fragment = BAD_VALUES[case]
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError, match=re.escape(fragment)):
            chart.validate_schema(values)
        with pytest.raises(helm.HelmValuesError):
            chart.render(values, name="gate", namespace="maestro")


def test_templates_refuse_sqlite_scale_out_even_without_the_schema(tmp_path: Path) -> None:
    """Without the schema (--skip-schema-validation) the templates still refuse SQLite scale-out."""
    copy = tmp_path / "maestro-gate"
    shutil.copytree(CHART, copy)
    (copy / "values.schema.json").unlink()
    with pytest.raises(helm.HelmRenderError, match="supports exactly one replica"):
        render({"replicaCount": 2}, chart_dir=copy)
    assert render({"replicaCount": 1}, chart_dir=copy)


# ---- Prometheus rules ---------------------------------------------------------------------------


def test_alert_rules_cover_the_failure_modes() -> None:
    """alerts.yml alerts on fail-closed, engine, audit, latency, bundle and approval metrics."""
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    exprs = " ".join(rule["expr"] for rule in rules)
    for metric in (
        "maestro_fail_closed_total",
        "maestro_engine_errors_total",
        "maestro_audit_append_failures_total",
        "maestro_decision_latency_seconds_bucket",
        "maestro_bundle_activation_failures_total",
        "maestro_pending_approvals",
    ):
        assert metric in exprs, metric
    assert "> 0.010" in exprs  # the p99 budget: 10 ms
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_promtool_checks_alert_rules() -> None:
    """`promtool check rules` accepts deploy/prometheus/alerts.yml."""
    result = subprocess.run(
        [promtool(), "check", "rules", "alerts.yml"],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_prometheus_config() -> None:
    """`promtool check config` accepts deploy/prometheus/prometheus.yml and its rule file."""
    result = subprocess.run(
        [promtool(), "check", "config", "prometheus.yml"],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_alert_unit_tests_pass() -> None:
    """`promtool test rules`: each alert fires on bad series and stays quiet on good ones."""
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


METRICS = {
    "maestro_decisions_total",
    "maestro_decision_latency_seconds",
    "maestro_engine_latency_seconds",
    "maestro_engine_errors_total",
    "maestro_audit_append_latency_seconds",
    "maestro_audit_append_failures_total",
    "maestro_audit_records",
    "maestro_bundle_info",
    "maestro_bundle_activation_failures_total",
    "maestro_layer_verdicts_total",
    "maestro_rule_hits_total",
    "maestro_pending_approvals",
    "maestro_fail_closed_total",
}


def test_grafana_dashboard_charts_every_service_metric() -> None:
    """The Grafana dashboard is valid JSON and charts every maestro_ metric and no other."""
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "maestro-gate.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for name in re.findall(r"maestro_\w+", " ".join(exprs))
    }
    assert used == METRICS
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


# ---- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_builds_a_non_root_read_only_capable_image() -> None:
    """The Dockerfile is multi-stage, runs non-root, declares its volume and health check."""
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, flags=re.MULTILINE)
    assert stages == ["builder", "runtime"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    user = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert user == ["${UID}:${GID}"]
    assert re.search(r"^ARG UID=10001$", text, flags=re.MULTILINE)
    assert 'VOLUME ["/var/lib/maestro-gate"]' in text
    assert re.search(r"^HEALTHCHECK .*\n.*/health", text, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["maestro-gate", "serve"]' in text
    assert "COPY policies/ /app/policies/" in text
    assert "COPY catalog/ /app/catalog/" in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "**"
    assert {"!pyproject.toml", "!service/", "!policies/", "!catalog/"} <= set(ignored)
