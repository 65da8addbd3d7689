"""Shared fixtures: one embedded broker per test session (a real broker process, never a mock)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

from worker.config import TopicSettings
from worker.kafka.broker import EmbeddedBroker


@pytest.fixture(scope="session")
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedBroker]:
    """A running embedded broker for the whole session."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    async with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture
def unique_topics() -> TopicSettings:
    """Contract topics with a unique suffix, so tests sharing the broker never see each other."""
    suffix = uuid.uuid4().hex[:8]
    defaults = TopicSettings()
    return TopicSettings(**{name: f"{value}.{suffix}" for name, value in defaults.model_dump().items()})


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Whatever a test configures for logging (an in-process worker configures structlog and the
    standard loggers' levels) is undone after it, so a later test captures what it logs."""
    saved = structlog.get_config()
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    root = logging.root.level
    yield
    structlog.configure(**saved)
    logging.root.setLevel(root)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
