"""Token renewal before expiry, driven by a timer (not only by the next call)."""

from __future__ import annotations

from typing import Any

from worker.events.models import Provider
from worker.runtime.timers import TokenKeeper
from worker.tokens import TokenSource


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.jobs: list[tuple[str, bool]] = []

    def scheduler_job(self, job: str, ok: bool) -> None:
        self.jobs.append((job, ok))

    def poll_succeeded(self, provider: str) -> None:
        return None


def source(clock: FakeClock, fetched: list[int]) -> TokenSource:
    async def fetch() -> tuple[str, float]:
        fetched.append(1)
        return f"token-{len(fetched)}", 300.0

    return TokenSource(fetch, margin=30.0, clock=clock)


async def test_refresh_does_nothing_before_the_first_token_or_while_fresh() -> None:
    clock, fetched = FakeClock(), []
    tokens = source(clock, fetched)
    assert await tokens.refresh_if_due() is False  # no eager login
    assert await tokens.get() == "token-1"
    clock.now = 200.0
    assert await tokens.refresh_if_due() is False
    assert fetched == [1]


async def test_refresh_renews_inside_the_margin_before_expiry() -> None:
    clock, fetched = FakeClock(), []
    tokens = source(clock, fetched)
    await tokens.get()
    clock.now = 275.0  # 25 s before expiry: inside the 30 s margin
    assert await tokens.refresh_if_due() is True
    assert await tokens.get() == "token-2"
    assert len(fetched) == 2


class FailingProvider:
    name = Provider.UP42

    async def refresh_token(self) -> bool:
        raise RuntimeError("credentials refused")


class RenewingProvider:
    name = Provider.ONEATLAS

    def __init__(self) -> None:
        self.calls = 0

    async def refresh_token(self) -> bool:
        self.calls += 1
        return True


async def test_keeper_counts_success_and_failure_without_raising() -> None:
    metrics = Recorder()
    good = RenewingProvider()
    providers: dict[Provider, Any] = {Provider.ONEATLAS: good, Provider.UP42: FailingProvider()}
    keeper = TokenKeeper(scheduler=None, providers=providers, metrics=metrics)  # type: ignore[arg-type]
    assert await keeper.refresh(Provider.ONEATLAS) is True
    assert await keeper.refresh(Provider.UP42) is False
    assert good.calls == 1
    assert metrics.jobs == [("token_refresh", True), ("token_refresh", False)]
