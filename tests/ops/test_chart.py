"""The Helm chart, offline: strict lint, render of every ci value set, schema validation of every
object (built-in kinds for the oldest and newest supported Kubernetes, CRDs against their vendored
schemas), render-time refusals, and the security posture of the Deployment."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from helm_python.errors import HelmError

from worker.config import NESTED_DELIMITER, Settings, settings_from

from .support import (
    CHART,
    CRD_SCHEMAS,
    RELEASE,
    ci_value_files,
    load_values,
    objects,
    of_kind,
    one_of_kind,
    render,
    render_objects_cached,
    run_promtool,
)

OLDEST_KUBERNETES = "1.25"
NEWEST_KUBERNETES = kubernetes_validate.utils.latest_version()
FULLNAME = f"{RELEASE}-tasking-worker"
CRD_FILES = {
    "ServiceMonitor": "servicemonitor_v1.json",
    "PrometheusRule": "prometheusrule_v1.json",
    "ScaledObject": "scaledobject_v1alpha1.json",
    "TriggerAuthentication": "triggerauthentication_v1alpha1.json",
}
PROXY_VARIABLES = {"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"}  # read by httpx, not by Settings
SECRET_VARIABLES = {
    "TASKING_ONEATLAS__API_KEY",
    "TASKING_UP42__USERNAME",
    "TASKING_UP42__PASSWORD",
    "TASKING_KAFKA__SASL_PASSWORD",
    "TASKING_KAFKA__SSL_KEY_PASSWORD",
    "TASKING_KAFKA__OAUTH__CLIENT_SECRET",
}
VALUE_SETS = [pytest.param(str(p), id=p.stem) for p in ci_value_files()]


def _pattern_unless_go_syntax(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    """``pattern`` as usual, except patterns Python cannot compile (Go-only syntax) are skipped."""
    try:
        re.compile(pattern)
    except re.error:
        return
    yield from jsonschema.Draft7Validator.VALIDATORS["pattern"](validator, pattern, instance, schema)


# No format checker, and Go-style patterns (``^(?i)...`` in PrometheusRule) are not enforced.
CrdValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"pattern": _pattern_unless_go_syntax}
)


def crd_schema(kind: str) -> dict[str, Any]:
    loaded = json.loads((CRD_SCHEMAS / CRD_FILES[kind]).read_text())
    assert isinstance(loaded, dict)
    return loaded


def rendered(values_file: str) -> list[dict[str, Any]]:
    return list(render_objects_cached(values_file))


def deployment(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return one_of_kind(objs, "Deployment")


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = deployment(objs)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found = containers[0]
    assert isinstance(found, dict)
    return found


def worker_config(objs: list[dict[str, Any]]) -> dict[str, str]:
    """The data of the ConfigMap holding the TASKING_* settings."""
    maps = [o for o in of_kind(objs, "ConfigMap") if o["metadata"]["name"] == FULLNAME]
    assert len(maps) == 1
    data = maps[0]["data"]
    assert isinstance(data, dict)
    return data


def hook_pod(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The ``helm test`` pod named ``<fullname>-test-<name>``."""
    pods = [o for o in of_kind(objs, "Pod") if o["metadata"]["name"] == f"{FULLNAME}-test-{name}"]
    assert len(pods) == 1
    return pods[0]


def render_error(values: dict[str, Any]) -> str:
    with pytest.raises(HelmError) as caught:
        render(values)
    return str(caught.value)


# -- lint and render -------------------------------------------------------------------------


def test_value_sets_cover_the_documented_scenarios() -> None:
    names = {p.stem for p in ci_value_files()}
    assert {
        "default-values",
        "monitoring-keda-values",
        "hpa-values",
        "existing-secret-sasl-values",
        "minimal-values",
    } <= names


@pytest.mark.parametrize("values_file", VALUE_SETS)
@pytest.mark.parametrize("kube_version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_strict_lint_is_clean(values_file: str, kube_version: str) -> None:
    report = helm.lint(
        str(CHART), load_values(Path(values_file)), strict=True, kube_version=f"v{kube_version}.0"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report
    assert problems == [], report


@pytest.mark.parametrize("values_file", VALUE_SETS)
@pytest.mark.parametrize("kube_version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_every_object_validates(values_file: str, kube_version: str) -> None:
    objs = rendered(values_file)
    assert objs
    for obj in objs:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in CRD_FILES:
            errors = list(CrdValidator(crd_schema(obj["kind"])).iter_errors(obj))
            assert errors == [], f"{name}: {[e.message for e in errors]}"
        else:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        assert obj["metadata"]["namespace"] == "tasking", name
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE, name


def test_crd_validation_can_fail() -> None:
    """The CRD schemas really are enforced: a wrong field type is reported."""
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "x"}, "triggers": [], "maxReplicaCount": "many"},
    }
    assert list(CrdValidator(crd_schema("ScaledObject")).iter_errors(bad))


def test_kubernetes_validation_can_fail() -> None:
    objs = rendered(str(ci_value_files()[0]))
    bad = json.loads(json.dumps(deployment(objs)))
    bad["spec"]["template"]["spec"]["containers"][0]["unknownField"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, NEWEST_KUBERNETES, strict=True)


def test_minimal_value_set_renders_only_the_essentials() -> None:
    objs = rendered(str(CHART / "ci" / "minimal-values.yaml"))
    # The two Pods are the `helm test` hooks (metrics, check).
    assert sorted(o["kind"] for o in objs) == ["ConfigMap", "Deployment", "Pod", "Pod", "Secret", "Service"]
    pod_spec = deployment(objs)["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == "default"


def test_monitoring_value_set_renders_every_kind() -> None:
    objs = rendered(str(CHART / "ci" / "monitoring-keda-values.yaml"))
    kinds = {o["kind"] for o in objs}
    assert {
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "ServiceAccount",
    } <= kinds
    assert "HorizontalPodAutoscaler" not in kinds
    assert "TriggerAuthentication" not in kinds  # PLAINTEXT Kafka needs no credentials


def test_values_schema_refuses_unknown_keys_at_every_level() -> None:
    for values in (
        {"bogus": 1},
        {"config": {"kafka": {"bogus": 1}}},
        {"monitoring": {"prometheusRule": {"consumerLag": {"bogus": 1}}}},
        {"autoscaling": {"keda": {"bogus": 1}}},
    ):
        with pytest.raises(HelmError, match="bogus"):
            render(values)


def test_schema_sets_additional_properties_false_on_every_defined_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: dict[str, Any], path: str) -> None:
        if "properties" in node:
            assert node.get("additionalProperties") is False, path
            for key, child in node["properties"].items():
                walk(child, f"{path}.{key}")

    walk(schema, "values")


# -- render-time refusals --------------------------------------------------------------------


def test_hpa_and_keda_together_fail_the_render() -> None:
    message = render_error({"autoscaling": {"hpa": {"enabled": True}, "keda": {"enabled": True}}})
    assert "enable at most one autoscaler" in message


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"autoscaling": {"hpa": {"enabled": True, "maxReplicas": 7}}}, "hpa.maxReplicas (7)"),
        ({"autoscaling": {"keda": {"enabled": True, "maxReplicaCount": 9}}}, "maxReplicaCount (9)"),
        ({"replicaCount": 7}, "replicaCount (7)"),
    ],
)
def test_more_replicas_than_partitions_fail_the_render(values: dict[str, Any], field: str) -> None:
    message = render_error(values)
    assert field in message
    assert "exceeds kafka.partitions (6)" in message
    # The same maximum passes once there are enough partitions.
    assert objects(render(values | {"kafka": {"partitions": 12}}))


def test_termination_grace_must_exceed_the_worker_drain() -> None:
    message = render_error({"terminationGracePeriodSeconds": 20})
    assert "terminationGracePeriodSeconds" in message


def test_sasl_needs_a_mechanism() -> None:
    message = render_error({"config": {"kafka": {"securityProtocol": "SASL_SSL"}}})
    assert "saslMechanism" in message


# -- the Deployment --------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_security_context_is_locked_down(values_file: str) -> None:
    objs = rendered(values_file)
    pod = deployment(objs)["spec"]["template"]["spec"]
    ctx = container(objs)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert ctx["runAsNonRoot"] is True
    assert isinstance(ctx["runAsUser"], int)
    assert ctx["runAsUser"] > 0
    assert isinstance(ctx["runAsGroup"], int)
    assert ctx["runAsGroup"] > 0
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["name"]: m["mountPath"] for m in container(objs)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["tmp"] == "/tmp"
    assert "emptyDir" in volumes["tmp"]
    for sa in of_kind(objs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_probes_port_and_grace_are_consistent(values_file: str) -> None:
    objs = rendered(values_file)
    config = worker_config(objs)
    main = container(objs)
    port = int(config["TASKING_HTTP__PORT"])
    assert main["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert main["args"] == ["run"]
    assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["startupProbe"]["httpGet"]["path"] == "/livez"
    grace = deployment(objs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(config["TASKING_SHUTDOWN_GRACE_SECONDS"])
    service = one_of_kind([o for o in objs if o["kind"] == "Service"], "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def _settings_variables(model: Any = Settings, prefix: str = "TASKING_") -> set[str]:
    """Every environment variable Settings reads (sections nest, e.g. TASKING_KAFKA__OAUTH__*)."""
    names: set[str] = set()
    for field, info in model.model_fields.items():
        sub = getattr(info.annotation, "model_fields", None)
        if sub:
            names |= _settings_variables(info.annotation, f"{prefix}{field}{NESTED_DELIMITER}".upper())
        else:
            names.add(f"{prefix}{field}".upper())
    return names


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_configuration_variables_are_settings_variables(values_file: str) -> None:
    objs = rendered(values_file)
    known = _settings_variables()
    config_keys = set(worker_config(objs))
    env = {e["name"]: e for e in container(objs)["env"]}
    assert config_keys - PROXY_VARIABLES <= known, config_keys - known
    assert set(env) == SECRET_VARIABLES
    assert not config_keys & SECRET_VARIABLES  # secrets never in the ConfigMap
    assert known >= SECRET_VARIABLES
    for name, entry in env.items():
        ref = entry["valueFrom"]["secretKeyRef"]
        assert (ref["key"], ref["optional"]) == (name, True)


def test_proxy_values_become_the_standard_proxy_variables() -> None:
    assert not PROXY_VARIABLES & set(worker_config(objects(render({}))))  # none by default
    proxy = {"https": "http://proxy.internal:3128", "noProxy": "kafka,.svc.cluster.local"}
    data = worker_config(objects(render({"config": {"proxy": proxy}})))
    assert data["HTTPS_PROXY"] == "http://proxy.internal:3128"
    assert data["NO_PROXY"] == "kafka,.svc.cluster.local"
    assert "HTTP_PROXY" not in data


@pytest.mark.parametrize(
    "proxy",
    [
        {"https": "http://user:secret@proxy.internal:3128"},  # credentials would land in a ConfigMap
        {"http": "proxy.internal:3128"},  # no scheme
        {"noProxy": "a, b"},
    ],
)
def test_values_schema_refuses_a_proxy_with_credentials_or_malformed(proxy: dict[str, str]) -> None:
    error = render_error({"config": {"proxy": proxy}})
    (field,) = proxy
    assert f"at '/config/proxy/{field}'" in error
    assert "does not match pattern" in error


def test_credentials_go_to_the_secret() -> None:
    end_users = [{"endUserName": "Acme SAS", "country": "FR"}]
    objs = objects(
        render(
            {
                "secrets": {"oneatlasApiKey": "k-123", "up42Password": "p-456"},
                "config": {"oneatlas": {"endUsers": end_users}},
            }
        )
    )
    secret = one_of_kind(objs, "Secret")
    assert set(secret["data"]) == {"TASKING_ONEATLAS__API_KEY", "TASKING_UP42__PASSWORD"}
    everything_else = yaml.safe_dump([o for o in objs if o["kind"] != "Secret"])
    assert "k-123" not in everything_else
    assert "p-456" not in everything_else


def test_existing_secret_digest_and_sasl_ssl() -> None:
    path = CHART / "ci" / "existing-secret-sasl-values.yaml"
    values = load_values(path)
    objs = rendered(str(path))
    assert of_kind(objs, "Secret") == []
    main = container(objs)
    default_repository = load_values(CHART / "values.yaml")["image"]["repository"]
    assert main["image"] == f"{default_repository}@{values['image']['digest']}"  # digest wins
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in main["env"]}
    assert refs == {"tasking-worker-credentials"}
    config = worker_config(objs)
    assert config["TASKING_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["TASKING_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
    ca_file = config["TASKING_KAFKA__SSL_CAFILE"]
    mount = next(m for m in main["volumeMounts"] if m["name"] == "kafka-ca")
    assert ca_file == f"{mount['mountPath']}/ca.crt"
    volume = next(
        v for v in deployment(objs)["spec"]["template"]["spec"]["volumes"] if v["name"] == "kafka-ca"
    )
    assert volume["secret"]["secretName"] == "tasking-worker-credentials"
    assert volume["secret"]["items"] == [{"key": "kafka-ca.crt", "path": "ca.crt"}]


def test_image_tag_defaults_to_app_version() -> None:
    objs = rendered(str(CHART / "ci" / "default-values.yaml"))
    with helm.Chart.load(str(CHART)) as chart:
        app_version = chart.metadata["appVersion"]
    assert container(objs)["image"].endswith(f":{app_version}")


def test_config_change_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        template = deployment(objects(render(values)))["spec"]["template"]
        return str(template["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) != checksum({"config": {"logLevel": "DEBUG"}})


# -- autoscaling -----------------------------------------------------------------------------


def test_hpa_scales_the_deployment_on_cpu() -> None:
    objs = rendered(str(CHART / "ci" / "hpa-values.yaml"))
    hpa = one_of_kind(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment(objs)["metadata"]["name"]
    assert hpa["spec"]["maxReplicas"] == 8
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in deployment(objs)["spec"]  # the autoscaler owns it
    assert of_kind(objs, "ScaledObject") == []


def test_keda_scales_on_the_requests_lag() -> None:
    objs = rendered(str(CHART / "ci" / "monitoring-keda-values.yaml"))
    scaled = one_of_kind(objs, "ScaledObject")
    config = worker_config(objs)
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["bootstrapServers"] == config["TASKING_KAFKA__BOOTSTRAP_SERVERS"]
    assert meta["consumerGroup"] == config["TASKING_KAFKA__GROUP_ID"]
    assert meta["topic"] == config["TASKING_TOPICS__REQUESTS"]
    assert meta["lagThreshold"] == "100"
    assert scaled["spec"]["maxReplicaCount"] == 12
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment(objs)["metadata"]["name"]
    assert "replicas" not in deployment(objs)["spec"]


def test_keda_reads_the_lag_with_the_worker_credentials_over_sasl() -> None:
    objs = rendered(str(CHART / "ci" / "existing-secret-sasl-values.yaml"))
    scaled = one_of_kind(objs, "ScaledObject")
    auth = one_of_kind(objs, "TriggerAuthentication")
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert refs["password"]["key"] == "TASKING_KAFKA__SASL_PASSWORD"
    assert refs["ca"]["key"] == "kafka-ca.crt"
    assert auth["spec"]["env"] == [
        {"parameter": "username", "name": "TASKING_KAFKA__SASL_USERNAME", "containerName": "tasking-worker"}
    ]


# -- monitoring, network, test hook ---------------------------------------------------------


def test_service_monitor_scrapes_the_service() -> None:
    objs = rendered(str(CHART / "ci" / "monitoring-keda-values.yaml"))
    monitor = one_of_kind(objs, "ServiceMonitor")
    service = one_of_kind(objs, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # The alert rules select job=<service name>, the job label the operator gives the target.
    assert service["metadata"]["name"] == FULLNAME


def test_prometheus_rule_passes_promtool(promtool: Path, tmp_path: Path) -> None:
    objs = rendered(str(CHART / "ci" / "monitoring-keda-values.yaml"))
    rule = one_of_kind(objs, "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    output = run_promtool(promtool, ["check", "rules", str(path)])
    assert "SUCCESS" in output


def test_dashboards_config_map_carries_the_dashboard_for_the_sidecar() -> None:
    objs = rendered(str(CHART / "ci" / "monitoring-keda-values.yaml"))
    maps = [o for o in of_kind(objs, "ConfigMap") if o["metadata"]["name"].endswith("-dashboards")]
    assert len(maps) == 1
    assert maps[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(maps[0]["data"]["tasking-worker.json"])
    assert shipped == json.loads((CHART / "dashboards" / "tasking-worker.json").read_text())


def test_network_policy_allows_only_metrics_in_and_dns_kafka_https_and_the_extra_proxy_out() -> None:
    objs = rendered(str(CHART / "ci" / "monitoring-keda-values.yaml"))
    policy = one_of_kind(objs, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"] == deployment(objs)["spec"]["selector"]["matchLabels"]
    assert [p["port"] for rule in spec["ingress"] for p in rule["ports"]] == ["http"]
    egress_ports = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}
    # 3128: the value set's egress proxy, allowed through networkPolicy.extraEgress.
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (9092, "TCP"), (443, "TCP"), (3128, "TCP")}
    assert worker_config(objs)["HTTPS_PROXY"] == "http://egress-proxy.proxy:3128"
    test_pod = hook_pod(objs, "metrics")
    peers = [peer.get("podSelector", {}).get("matchLabels") for peer in spec["ingress"][0]["from"]]
    assert any(p and p.items() <= test_pod["metadata"]["labels"].items() for p in peers)


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_helm_test_pod_checks_build_info_on_metrics(values_file: str) -> None:
    objs = rendered(values_file)
    pod = hook_pod(objs, "metrics")
    service = one_of_kind(objs, "Service")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = " ".join(pod["spec"]["containers"][0]["command"])
    port = service["spec"]["ports"][0]["port"]
    assert f"http://{service['metadata']['name']}:{port}/metrics" in script
    assert "tasking_build_info" in script
    assert pod["spec"]["restartPolicy"] == "Never"
    # Never selected by the worker's Service, PDB or NetworkPolicy.
    assert not service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_notes_render_with_instructions() -> None:
    notes = render({})["tasking-worker/templates/NOTES.txt"]
    assert f"deployment/{FULLNAME}" in notes
    assert "/readyz" in notes
    assert "PROVIDER_NOT_CONFIGURED" in notes  # no credentials in the default values


def test_routing_rates_become_the_json_variable_the_worker_reads() -> None:
    assert "TASKING_ROUTING__RATES" not in worker_config(objects(render({})))  # none by default
    rates = {"CREDITS": 0.01, "USD": 0.92}
    data = worker_config(objects(render({"config": {"routing": {"rates": rates}}})))
    assert json.loads(data["TASKING_ROUTING__RATES"]) == rates
    assert settings_from({"TASKING_ROUTING__RATES": data["TASKING_ROUTING__RATES"]}).routing.rates == rates


@pytest.mark.parametrize(
    ("rates", "why"),
    [
        ({"USD": 0}, "/config/routing/rates/USD"),
        ({"USD": "0.9"}, "/config/routing/rates/USD"),
        ({"usd": 0.9}, "usd"),
    ],
)
def test_values_schema_refuses_a_rate_that_is_not_positive_or_a_bad_currency(
    rates: dict[str, Any], why: str
) -> None:
    assert why in render_error({"config": {"routing": {"rates": rates}}})


# -- Kafka security modes ----------------------------------------------------------------------

PEM_CA = "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"
PEM_CERT = "-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"
OAUTH = {"tokenUrl": "https://idp.example/token", "clientId": "tasking-worker", "scope": "kafka"}
SECURITY_MODES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plaintext": ({}, {}),
    "ssl-ca": ({"securityProtocol": "SSL"}, {"kafkaCaCert": PEM_CA}),
    "ssl-system-trust": ({"securityProtocol": "SSL"}, {}),
    "ssl-mutual": (
        {"securityProtocol": "SSL"},
        {
            "kafkaCaCert": PEM_CA,
            "kafkaClientCert": PEM_CERT,
            "kafkaClientKey": PEM_KEY,
            "kafkaSslKeyPassword": "kp",
        },
    ),
    "sasl-plaintext-plain": (
        {"securityProtocol": "SASL_PLAINTEXT", "saslMechanism": "PLAIN", "saslUsername": "u"},
        {"kafkaSaslPassword": "pw"},
    ),
    "sasl-ssl-scram-sha-256": (
        {"securityProtocol": "SASL_SSL", "saslMechanism": "SCRAM-SHA-256", "saslUsername": "u"},
        {"kafkaSaslPassword": "pw", "kafkaCaCert": PEM_CA},
    ),
    "sasl-ssl-scram-sha-512-mutual": (
        {"securityProtocol": "SASL_SSL", "saslMechanism": "SCRAM-SHA-512", "saslUsername": "u"},
        {"kafkaSaslPassword": "pw", "kafkaClientCert": PEM_CERT, "kafkaClientKey": PEM_KEY},
    ),
    "sasl-ssl-oauthbearer": (
        {
            "securityProtocol": "SASL_SSL",
            "saslMechanism": "OAUTHBEARER",
            "oauth": OAUTH | {"extensions": {"logicalCluster": "lkc-1"}},
        },
        {"kafkaOauthClientSecret": "cs"},
    ),
}


def _worker_settings(objs: list[dict[str, Any]], tmp_path: Path) -> Settings:
    """Settings exactly as the pod gets them: the ConfigMap, the Secret's variables, and the
    Secret's files materialised where the volume mounts them (paths re-rooted under tmp_path)."""
    import base64

    secret = one_of_kind(objs, "Secret")["data"] or {}
    pod = deployment(objs)["spec"]["template"]["spec"]
    mount_dir = "/etc/tasking-worker/kafka"
    for volume in pod["volumes"]:
        for item in volume.get("secret", {}).get("items", []):
            (tmp_path / item["path"]).write_bytes(base64.b64decode(secret[item["key"]]))
    env = {k: v.replace(mount_dir, str(tmp_path)) for k, v in worker_config(objs).items()}
    names = {e["name"] for e in container(objs)["env"]}
    env |= {k: base64.b64decode(v).decode() for k, v in secret.items() if k in names}
    return settings_from(env)


@pytest.mark.parametrize("mode", list(SECURITY_MODES))
def test_each_kafka_security_mode_renders_settings_the_worker_accepts(mode: str, tmp_path: Path) -> None:
    kafka, secrets = SECURITY_MODES[mode]
    values = {"config": {"kafka": kafka | {"replicationFactor": 3}}, "secrets": secrets}
    objs = objects(render(values))
    for obj in objs:
        if obj["kind"] not in CRD_FILES:
            kubernetes_validate.validate(obj, NEWEST_KUBERNETES, strict=True)
    settings = _worker_settings(objs, tmp_path)
    k = settings.kafka
    assert k.security_protocol.value == kafka.get("securityProtocol", "PLAINTEXT")
    assert k.sasl_mechanism == kafka.get("saslMechanism")
    assert k.replication_factor == 3
    assert (k.ssl_cafile is not None) == ("kafkaCaCert" in secrets)
    assert (k.ssl_certfile is not None) == ("kafkaClientCert" in secrets)
    if "kafkaSslKeyPassword" in secrets:
        assert k.ssl_key_password is not None
        assert k.ssl_key_password.get_secret_value() == "kp"
    if k.sasl_mechanism == "OAUTHBEARER":
        assert str(k.oauth.token_url) == OAUTH["tokenUrl"]
        assert k.oauth.extensions == {"logicalCluster": "lkc-1"}
        assert k.oauth.client_secret is not None
    check = hook_pod(objs, "check")
    assert check["spec"]["containers"][0]["args"] == ["check"]
    assert check["spec"]["containers"][0]["env"] == container(objs)["env"]
    assert check["spec"]["volumes"][1:] == deployment(objs)["spec"]["template"]["spec"]["volumes"][1:]


def test_the_check_runs_as_an_init_container_when_asked() -> None:
    objs = rendered(str(CHART / "ci" / "mtls-values.yaml"))
    pod = deployment(objs)["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert init["args"] == ["check"]
    assert init["env"] == container(objs)["env"]
    assert {m["name"] for m in init["volumeMounts"]} == {"tmp", "kafka-ca"}
    items = next(v for v in pod["volumes"] if v["name"] == "kafka-ca")["secret"]["items"]
    assert [i["path"] for i in items] == ["ca.crt", "client.crt", "client.key"]
    assert (
        "initContainers"
        not in deployment(rendered(str(CHART / "ci" / "default-values.yaml")))["spec"]["template"]["spec"]
    )


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (
            {"config": {"kafka": {"securityProtocol": "SASL_SSL", "saslMechanism": "OAUTHBEARER"}}},
            "oauth.tokenUrl",
        ),
        (
            {"config": {"kafka": {"securityProtocol": "SSL"}}, "secrets": {"kafkaClientCert": PEM_CERT}},
            "kafkaClientKey",
        ),
        ({"secrets": {"kafkaClientCert": PEM_CERT, "kafkaClientKey": PEM_KEY}}, "SSL or SASL_SSL"),
    ],
)
def test_kafka_security_values_that_cannot_connect_fail_the_render(
    values: dict[str, Any], words: str
) -> None:
    assert words in render_error(values)


def test_values_schema_refuses_a_token_url_that_is_not_http() -> None:
    with pytest.raises(HelmError, match="tokenUrl"):
        render({"config": {"kafka": {"oauth": {"tokenUrl": "idp.example/token"}}}})
