"""The deploy guide's main example (docs/deploy.md, SASL_SSL with a private CA) is the ci value
file the chart tests render, and what it renders is a configuration the worker accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_python.errors import HelmError

from worker.config import TopicSettings, known_variables, settings_from, unknown_variables

from .support import CHART, objects, one_of_kind, render

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "deploy.md"
SECURED = CHART / "ci" / "secured-values.yaml"
FULLNAME = "tw-tasking-worker"


def _guide_values() -> str:
    text = GUIDE.read_text()
    match = re.search(r"<!-- secured-values:[^>]*-->\n```yaml\n(.*?)```\n", text, re.DOTALL)
    assert match, "the guide's secured-values block is missing"
    return match.group(1)


def _rendered() -> list[dict[str, Any]]:
    return objects(render(yaml.safe_load(SECURED.read_text())))


def test_the_guide_shows_the_tested_values_file_verbatim() -> None:
    assert _guide_values() == SECURED.read_text()


def test_the_secured_example_renders_sasl_ssl_with_the_ca_mounted() -> None:
    objs = _rendered()
    deployment = one_of_kind(objs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (main,) = pod["containers"]
    config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == FULLNAME)["data"]
    assert config["TASKING_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["TASKING_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
    mount = next(m for m in main["volumeMounts"] if m["name"] == "kafka-ca")
    assert config["TASKING_KAFKA__SSL_CAFILE"] == f"{mount['mountPath']}/ca.crt"
    volume = next(v for v in pod["volumes"] if v["name"] == "kafka-ca")
    assert volume["secret"]["secretName"] == "tasking-worker-credentials"
    assert volume["secret"]["items"] == [{"key": "kafka-ca.crt", "path": "ca.crt"}]
    secret_keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in main["env"]}
    assert "TASKING_KAFKA__SASL_PASSWORD" in secret_keys
    assert "TASKING_ONEATLAS__API_KEY" in secret_keys
    assert main["image"].startswith("registry.example.com/imagery/tasking-worker@sha256:")
    assert [o for o in objs if o["kind"] == "Secret"] == []  # the existing Secret is used


def test_the_secured_example_is_a_configuration_the_worker_accepts(tmp_path: Path) -> None:
    config = next(o for o in _rendered() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == FULLNAME)[
        "data"
    ]
    worker_env = {k: v for k, v in config.items() if k.startswith("TASKING_")}
    assert unknown_variables(worker_env) == []
    assert set(worker_env) <= set(known_variables())
    # The mounted CA file, where the pod has it (the settings refuse a path with no file).
    (tmp_path / "ca.crt").write_text("stand-in")
    mounted = {k: v.replace("/etc/tasking-worker/kafka", str(tmp_path)) for k, v in worker_env.items()}
    # the Secret's keys, as the pod gets them (stand-in values)
    settings = settings_from(
        {
            **mounted,
            "TASKING_KAFKA__SASL_PASSWORD": "stand-in",
            "TASKING_ONEATLAS__API_KEY": "stand-in",
        }
    )
    assert [(u.endUserName, u.country) for u in settings.oneatlas.end_users] == [
        ("Example Agriculture Ltd", "GB")
    ]
    assert settings.oneatlas.neo_contract_id == "CT-NEO-7890"
    assert settings.oneatlas.rate_limit_per_second == 5
    assert settings.oneatlas.max_concurrency == 16
    assert settings.up42.rate_limit_per_second == 5
    assert settings.oneatlas.notification_emails == ["imagery-ops@example.com"]
    assert settings.approval.unbudgeted_ceiling == {"EUR": 5000, "CREDITS": 400000}
    assert settings.kafka.create_topics is False


def test_an_api_key_without_end_users_is_refused_at_render() -> None:
    with pytest.raises(HelmError) as caught:
        render({"secrets": {"oneatlasApiKey": "k-1"}})
    assert "config.oneatlas.endUsers" in str(caught.value)
    assert "k-1" not in str(caught.value)


def test_the_guide_lists_every_topic_with_its_retention() -> None:
    text = GUIDE.read_text()
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `tasking.")}
    assert set(rows) == set(TopicSettings().all())
    assert "compact" in rows["tasking.worker-state"]
    for topic, line in rows.items():
        assert line.count("|") >= 8, topic  # partitions, replication, min ISR, policy, retention, why
