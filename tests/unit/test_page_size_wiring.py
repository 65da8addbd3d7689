"""``TASKING_TRACKING__PAGE_SIZE`` reaches the adapter that lists orders page by page."""

from __future__ import annotations

from worker.app import build_providers
from worker.config import settings_from
from worker.events.models import Provider
from worker.observability.metrics import WorkerMetrics


def test_the_configured_page_size_reaches_the_oneatlas_adapter() -> None:
    settings = settings_from(
        {
            "TASKING_ONEATLAS__API_KEY": "key",
            "TASKING_ONEATLAS__CONTRACT_ID": "CTR1",
            "TASKING_ONEATLAS__END_USERS": '[{"endUserName": "Acme SAS", "country": "FR"}]',
            "TASKING_TRACKING__PAGE_SIZE": "500",
        }
    )
    provider = build_providers(settings, WorkerMetrics())[Provider.ONEATLAS]
    assert provider._page_size == 500  # type: ignore[attr-defined]
