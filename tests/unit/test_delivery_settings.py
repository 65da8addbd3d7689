"""Delivery settings: the defaults complete on evidence, and a grace period longer than the
delivery timeout stops the start with one message naming both variables."""

from __future__ import annotations

import pytest

from worker.app import domain_settings
from worker.config import settings_from
from worker.errors import ConfigError


def test_the_defaults_wait_for_no_clock_and_harvest_a_week_after_completion() -> None:
    settings = settings_from({})
    assert settings.tracking.delivery_grace_seconds == 0
    assert settings.tracking.harvest_after_completion_seconds == 604800
    assert settings.up42.delivery_overlap_seconds == 3600
    domain = domain_settings(settings)
    assert (domain.delivery_grace_seconds, domain.harvest_after_completion_seconds) == (0, 604800)


def test_a_grace_longer_than_the_timeout_stops_the_start_naming_both_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(
            {
                "TASKING_TRACKING__DELIVERY_GRACE_SECONDS": "120",
                "TASKING_TRACKING__DELIVERY_TIMEOUT_SECONDS": "60",
            }
        )
    message = str(caught.value)
    assert "\n" not in message
    assert "TASKING_TRACKING__DELIVERY_GRACE_SECONDS" in message
    assert "TASKING_TRACKING__DELIVERY_TIMEOUT_SECONDS" in message
    assert "120" not in message, "the message states the rule, not the values"


def test_a_grace_within_the_timeout_is_accepted() -> None:
    settings = settings_from(
        {"TASKING_TRACKING__DELIVERY_GRACE_SECONDS": "60", "TASKING_TRACKING__DELIVERY_TIMEOUT_SECONDS": "60"}
    )
    assert settings.tracking.delivery_grace_seconds == 60


def test_a_harvest_window_longer_than_the_retention_stops_the_start_naming_both_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(
            {
                "TASKING_TRACKING__HARVEST_AFTER_COMPLETION_SECONDS": "7200",
                "TASKING_TRACKING__FINISHED_RETENTION_SECONDS": "3600",
            }
        )
    message = str(caught.value)
    assert "\n" not in message
    assert "TASKING_TRACKING__HARVEST_AFTER_COMPLETION_SECONDS" in message
    assert "TASKING_TRACKING__FINISHED_RETENTION_SECONDS" in message


def test_a_harvest_window_equal_to_the_retention_is_accepted() -> None:
    settings = settings_from(
        {
            "TASKING_TRACKING__HARVEST_AFTER_COMPLETION_SECONDS": "3600",
            "TASKING_TRACKING__FINISHED_RETENTION_SECONDS": "3600",
        }
    )
    assert settings.tracking.finished_retention_seconds == 3600
