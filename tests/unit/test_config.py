"""Settings for an embedded worker: read from exactly the given variables, nothing leaks in or
stays behind."""

from __future__ import annotations

import os

import pytest

from worker.config import known_variables, settings_from, unknown_variables
from worker.errors import ConfigError


def test_settings_come_from_exactly_the_given_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKING_KAFKA__BOOTSTRAP_SERVERS", "configured-cluster:9092")
    monkeypatch.setenv("TASKING_LOG_LEVEL", "DEBUG")
    monkeypatch.delenv("TASKING_KAFKA__GROUP_ID", raising=False)
    settings = settings_from(
        {"TASKING_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092", "TASKING_KAFKA__GROUP_ID": "embedded"}
    )
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.group_id == "embedded"
    assert settings.log_level == "INFO"  # the caller's DEBUG was hidden: the default applies
    # and the process environment is as it was
    assert os.environ["TASKING_KAFKA__BOOTSTRAP_SERVERS"] == "configured-cluster:9092"
    assert os.environ["TASKING_LOG_LEVEL"] == "DEBUG"
    assert "TASKING_KAFKA__GROUP_ID" not in os.environ


def test_an_invalid_value_names_its_variable_and_restores_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKING_LOG_LEVEL", "DEBUG")
    with pytest.raises(ConfigError, match="TASKING_LOG_LEVEL") as caught:
        settings_from({"TASKING_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092", "TASKING_LOG_LEVEL": "LOUD"})
    assert "LOUD" not in str(caught.value)
    assert os.environ["TASKING_LOG_LEVEL"] == "DEBUG"


def test_routing_rates_are_a_json_object_of_positive_numbers() -> None:
    settings = settings_from({"TASKING_ROUTING__RATES": '{"CREDITS": 0.01, "USD": 0.92}'})
    assert settings.routing.rates == {"CREDITS": 0.01, "USD": 0.92}
    assert settings_from({}).routing.rates == {}


@pytest.mark.parametrize(
    "value", ['{"CREDITS": 0.01', "[0.01]", '{"CREDITS": 0}', '{"CREDITS": -1}', '{"CREDITS": "x"}']
)
def test_invalid_routing_rates_stop_the_start_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from({"TASKING_ROUTING__RATES": value})
    message = str(caught.value)
    assert message.startswith("TASKING_ROUTING__RATES: ")
    assert "\n" not in message


def test_oneatlas_without_end_users_stops_the_start_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from({"TASKING_ONEATLAS__API_KEY": "key-SECRET-9"})
    message = str(caught.value)
    assert message.startswith("TASKING_ONEATLAS__END_USERS: ")
    assert "\n" not in message
    assert "key-SECRET-9" not in message


def test_nothing_is_declared_that_the_operator_did_not_say() -> None:
    assert settings_from({}).oneatlas.end_users == []  # no default end user
    settings = settings_from(
        {
            "TASKING_ONEATLAS__API_KEY": "key",
            "TASKING_ONEATLAS__END_USERS": '[{"endUserName": "Acme SAS", "country": "DE"}]',
        }
    )
    assert [(u.endUserName, u.country) for u in settings.oneatlas.end_users] == [("Acme SAS", "DE")]


def test_unknown_variables_are_named_with_the_closest_known_one() -> None:
    found = unknown_variables(
        {
            "TASKING_LOG_LEVL": "DEBUG",
            "TASKING_ONEATLAS__ENDUSERS": "[]",
            "TASKING_NOTHING_LIKE_IT": "1",
            "TASKING_KAFKA__BOOTSTRAP_SERVERS": "k:9092",  # known
            "TASKING_KAFKA": "{}",  # a whole section as JSON is read too
            "OTHER_LOG_LEVL": "x",  # not ours
        }
    )
    assert found == [
        ("TASKING_LOG_LEVL", "TASKING_LOG_LEVEL"),
        ("TASKING_NOTHING_LIKE_IT", None),
        ("TASKING_ONEATLAS__ENDUSERS", "TASKING_ONEATLAS__END_USERS"),
    ]


def test_every_field_is_a_known_variable_that_pydantic_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The names the warning compares with are the ones the settings really read."""
    assert "TASKING_TRACKING__DELIVERY_GRACE_SECONDS" in known_variables()
    settings = settings_from({"TASKING_TRACKING__DELIVERY_GRACE_SECONDS": "7"})
    assert settings.tracking.delivery_grace_seconds == 7
