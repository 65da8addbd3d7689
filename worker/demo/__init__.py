"""``tasking-worker demo``: the whole service on one machine, with sample orders, in under two minutes.

What runs, all in this process and on loopback:

* the embedded Kafka-compatible broker (:class:`~worker.kafka.broker.EmbeddedBroker`) with the
  contract's topics, co-partitioned;
* both provider simulators as real HTTP servers (:func:`~worker.simulators.server.start_simulators`);
* the worker itself, built by :func:`worker.app.build_worker` from :class:`~worker.config.Settings`
  read from ``TASKING_*`` variables (the simulators' URLs and credentials, the broker's address),
  exactly as in production;
* a client that publishes the sample requests of :data:`SAMPLES` on ``tasking.order-requests``,
  reads ``tasking.order-status``, ``tasking.acquisitions`` and ``tasking.deliveries`` (the
  delivered products, STAC Items) like any downstream consumer (no consumer group) and answers
  decisions with commands on ``tasking.commands``.

Time-lapse. The simulators share one clock (:data:`BASE_SPEED` times real time). Whenever every
open order is in its provider's hands (placed and not waiting for a decision), the demo moves that
clock ahead by ``speed`` simulated seconds per real second, so weeks of studies, quotations and
acquisitions pass in seconds. It never does so while an order is being validated, priced or placed,
or while a decision waits: a real client never sees days pass between two calls of one step (an
attempt's order deadline would pass in the middle of it). The jumps move the providers' business
calendar, not their login sessions: the simulators' tokens live in real time (a 5-minute token
would otherwise expire between a renewal and its first use).

Decisions. Interactively (a terminal on stdin and stdout, no ``--plain``, no ``--auto-approve``)
the demo asks. Otherwise it answers like an automated client: it selects the first option of a
``select-feasibility-option`` decision, approves ``approve-price`` and ``confirm-order`` decisions
unless the price exceeds the request's budget (then it *rejects*, to show the declined path), and
accepts every acquisition still ``PROPOSED`` :data:`ACQUISITION_GRACE_SECONDS` after it appeared (the
worker's own ``acquisitionPolicy`` decides first).

Last step: one delivered product of a completed order is downloaded with ``tasking-worker
download``'s code (progress bar, checksum), into the logs directory.

Result. :func:`run` returns the process exit code: 0 when every sample reached its expected status
(:attr:`Sample.expected`) and the product was downloaded, 1 when one ended elsewhere, the download
failed or the demo could not start, 3 when ``timeout`` passed first. Everything is stopped in
reverse order of start in every case: the worker gracefully (it leaves its group and flushes),
then the servers, then the broker.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.prompt import IntPrompt, Prompt

from worker.config import Settings
from worker.demo.samples import (
    ACQUISITION_GRACE_SECONDS,
    DRAIN_SECONDS,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    SAMPLES,
    TICK_SECONDS,
    Answer,
    DemoOptions,
    auto_answer,
    command_for,
    load_samples,
    over_budget,
)
from worker.demo.stack import Services, fast_forward, in_daemon_thread, kafka_clients, running_services
from worker.demo.summary import _report
from worker.demo.view import Board, OrderView, Output, acquisition_line, delivery_line, status_line
from worker.display import offer_lines
from worker.events import codec
from worker.events.models import (
    AcquisitionEvent,
    AcquisitionStatus,
    CommandName,
    DecisionKind,
    OrderStatusEvent,
)
from worker.events.status import OrderStatus

T = TypeVar("T")


# --------------------------------------------------------------------------- the run
class Timeout(Exception):
    """The demo's ``--timeout`` passed before every order was done."""


class WorkerStopped(Exception):
    """The worker stopped before every order was done (a fatal error; see its log)."""


@dataclass
class Demo:
    """One demo run: the client side (publish, watch, decide) once the services are up."""

    options: DemoOptions
    settings: Settings
    board: Board
    output: Output
    producer: AIOKafkaProducer
    interactive: bool
    advance: Callable[[float], None]
    decisions: asyncio.Queue[tuple[float, str, OrderStatusEvent | AcquisitionEvent]] = field(
        default_factory=asyncio.Queue
    )
    answered: set[str] = field(default_factory=set)
    live: Live | None = None
    prompting: bool = False

    async def publish_samples(self) -> None:
        for view in self.board.views.values():
            record = codec.encode_input(view.request, source="urn:tasking-worker:demo")
            await self.producer.send_and_wait(
                self.settings.topics.requests, record.value, key=record.key, headers=record.headers
            )
            self.output.note(f"published {view.request.request_id}: {view.sample.story}")

    async def watch(self, consumer: AIOKafkaConsumer) -> None:
        """Apply every status and acquisition event to the board; queue what needs an answer."""
        topics = self.settings.topics
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for record in (r for batch in batches.values() for r in batch):
                try:
                    if record.topic == topics.status:
                        self._on_status(OrderStatusEvent.model_validate_json(record.value or b""))
                    elif record.topic == topics.deliveries:
                        self._on_delivery(orjson.loads(record.value or b"{}"))
                    else:
                        self._on_acquisition(AcquisitionEvent.model_validate_json(record.value or b""))
                except (ValidationError, orjson.JSONDecodeError):
                    self.output.note(f"unreadable event on {record.topic} at offset {record.offset}")

    def _on_status(self, event: OrderStatusEvent) -> None:
        view = self.board.apply_status(event)
        if view is None:
            return
        if not self.output.live:
            self.output.line(status_line(event))
        rejected = event.reason is not None and event.reason.code == "COMMAND_REJECTED"
        if event.status is OrderStatus.DECISION_REQUIRED and not rejected:
            self.decisions.put_nowait((time.monotonic(), event.request_id, event))

    def _on_delivery(self, item: dict[str, Any]) -> None:
        known = self.board.views.get(str((item.get("properties") or {}).get("tasking:request_id")))
        first = known is not None and str(item.get("id")) not in known.deliveries
        if self.board.apply_delivery(item) is not None and first and not self.output.live:
            self.output.line(delivery_line(item))

    def _on_acquisition(self, event: AcquisitionEvent) -> None:
        if self.board.apply_acquisition(event) is None:
            return
        if not self.output.live:
            self.output.line(acquisition_line(event))
        if event.status is AcquisitionStatus.PROPOSED:
            due = time.monotonic() + ACQUISITION_GRACE_SECONDS
            self.decisions.put_nowait((due, event.request_id, event))

    async def decide(self) -> None:
        """Answer queued decisions one at a time (so prompts never overlap)."""
        while True:
            due, request_id, item = await self.decisions.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            view = self.board.views[request_id]
            if view.done:
                continue
            if isinstance(item, OrderStatusEvent):
                await self._answer_decision(view, item)
            elif isinstance(item, AcquisitionEvent):
                await self._answer_acquisition(view, item)

    async def _answer_decision(self, view: OrderView, event: OrderStatusEvent) -> None:
        if view.last is None or view.last.sequence != event.sequence:
            return  # the worker moved on (a deadline, another command)
        key = f"{event.request_id}:decision:{event.sequence}"
        if key in self.answered:
            return
        answer = (
            await self._ask_decision(view, event) if self.interactive else auto_answer(view.request, event)
        )
        if answer is not None:
            await self._send(event.request_id, answer, f"demo-{event.sequence}-{answer.command.value}")
            self.answered.add(key)

    async def _answer_acquisition(self, view: OrderView, event: AcquisitionEvent) -> None:
        latest = view.acquisitions.get(event.acquisition_id)
        key = f"{event.request_id}:acquisition:{event.acquisition_id}"
        if latest is None or latest.status is not AcquisitionStatus.PROPOSED or key in self.answered:
            return  # the worker's policy (or the provider) already decided
        if self.interactive:
            answer = await self._ask_acquisition(latest)
        else:
            answer = Answer(
                CommandName.ACCEPT_ACQUISITION,
                "proposed acquisition accepted",
                acquisition_id=latest.acquisition_id,
            )
        await self._send(event.request_id, answer, f"demo-{answer.command.value}-{latest.acquisition_id}")
        self.answered.add(key)

    async def _send(self, request_id: str, answer: Answer, command_id: str) -> None:
        command = command_for(request_id, answer, command_id[:128])
        record = codec.encode_input(command, source="urn:tasking-worker:demo")
        await self.producer.send_and_wait(
            self.settings.topics.commands, record.value, key=record.key, headers=record.headers
        )
        target = answer.option_id or answer.acquisition_id or ""
        self.output.note(f"demo → {answer.command.value} {target} for {request_id} ({answer.why})")

    # ----------------------------------------------------------------- interactive prompts

    async def _ask_decision(self, view: OrderView, event: OrderStatusEvent) -> Answer | None:
        decision = event.decision
        if decision is None:
            return None

        def ask() -> Answer | None:
            self.output.console.print(
                f"\n[bold magenta]{escape(event.request_id)}[/] needs a decision: "
                f"{escape(status_line(event))}"
            )
            if decision.kind is DecisionKind.SELECT_OFFER:
                return ask_offer()
            if decision.kind is DecisionKind.SELECT_FEASIBILITY_OPTION:
                for number, option in enumerate(decision.options, start=1):
                    self.output.console.print(f"  {number}. {escape(option.description)} ({option.id})")
                choice = IntPrompt.ask(
                    "option",
                    console=self.output.console,
                    default=1,
                    choices=[str(n) for n in range(1, len(decision.options) + 1)],
                )
                chosen = decision.options[choice - 1]
                return Answer(
                    CommandName.SELECT_FEASIBILITY_OPTION, f"option {choice} chosen", option_id=chosen.id
                )
            default = "reject" if over_budget(view.request, event) else "approve"
            verb = Prompt.ask(
                "approve or reject",
                console=self.output.console,
                choices=["approve", "reject"],
                default=default,
            )
            return Answer(CommandName(verb), f"{verb} chosen at the prompt")

        def ask_offer() -> Answer | None:
            assert decision is not None
            self.output.console.print("  the offers, preferred first:")
            for line in offer_lines([o.to_json_dict() for o in event.offers or []]):
                self.output.console.print(f"    {escape(line)}")
            for number, option in enumerate(decision.options, start=1):
                self.output.console.print(f"  {number}. {escape(option.description)} ({option.id})")
            choice = IntPrompt.ask(
                "offer to order",
                console=self.output.console,
                default=1,
                choices=[str(n) for n in range(1, len(decision.options) + 1)],
            )
            chosen = decision.options[choice - 1]
            return Answer(
                CommandName.SELECT_OFFER, f"offer {chosen.id} chosen at the prompt", option_id=chosen.id
            )

        return await self._prompt(ask)

    async def _ask_acquisition(self, event: AcquisitionEvent) -> Answer:
        def ask() -> Answer:
            self.output.console.print(
                f"\n[bold magenta]{escape(event.request_id)}[/]: {escape(acquisition_line(event))}"
            )
            verb = Prompt.ask(
                "accept or refuse",
                console=self.output.console,
                choices=["accept", "refuse"],
                default="accept",
            )
            return Answer(
                CommandName(f"{verb}-acquisition"),
                f"{verb} chosen at the prompt",
                acquisition_id=event.acquisition_id,
            )

        return await self._prompt(ask)

    async def _prompt(self, ask: Callable[[], T]) -> T:
        """Run a blocking prompt with the live view stopped and simulated time held."""
        self.prompting = True
        live = self.live
        if live is not None:
            live.stop()
        try:
            return await in_daemon_thread(ask)
        finally:
            self.prompting = False
            if live is not None:
                live.start()

    # ----------------------------------------------------------------- time-lapse

    async def time_lapse(self) -> None:
        """Move simulated time ahead while every open order waits on its provider."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.output.paused_by = ["your answer"] if self.prompting else self.board.waiting_on()
            if not self.prompting and self.board.with_providers():
                self.advance(self.options.speed * TICK_SECONDS)

    async def until_done(self, deadline: float, worker: asyncio.Task[None]) -> None:
        """Return once every order is done.

        Raises:
            Timeout: at ``deadline``.
            WorkerStopped: the worker's task ended on its own (its log says why).
        """
        while not self.board.all_done():
            if worker.done():
                raise WorkerStopped
            if time.monotonic() >= deadline:
                raise Timeout
            await asyncio.sleep(0.2)


async def run_async(options: DemoOptions, console: Console) -> int:
    """The whole demo; returns the exit code (see the module docstring)."""
    from aiokafka.errors import KafkaError

    from worker.delivery.command import download_first
    from worker.errors import ConfigError
    from worker.kafka.broker import BrokerError

    started = time.monotonic()
    live = not options.plain and console.is_terminal
    interactive = live and not options.auto_approve and sys.stdin.isatty()
    if not options.auto_approve and not interactive:
        console.print(
            "[yellow]no terminal to ask on: decisions are answered automatically, as with --auto-approve[/]"
        )
    workdir = Path(tempfile.mkdtemp(prefix="tasking-demo-"))
    output = Output(console, live, started)
    board = Board(load_samples(datetime.now(UTC), interactive=interactive), SAMPLES)
    output.board = board
    output.line(f"starting the broker, the simulators and the worker (logs in {workdir})")
    # Beside the downloaded items, whose ``collection`` links point at ``../collections/{id}.json``.
    from worker.commands.stac import write_collections

    collections = workdir / "downloads" / "collections"
    write_collections(collections, None)
    output.line(f"STAC collection documents of the delivered items: {collections}")
    try:
        async with running_services(workdir) as services:
            code = await _client(options, services, board, output, interactive, started)
            if code == EXIT_OK:  # the last step: one delivered product to a local file
                code = await download_first(
                    services.settings, board.completed(), workdir / "downloads", console, bars=live
                )
    except (BrokerError, OSError, ConfigError, KafkaError) as exc:
        console.print(
            f"[bold red]the demo could not run:[/] {escape(type(exc).__name__)}: {escape(str(exc))}"
        )
        code = EXIT_FAILED
    _report(console, board, code, options.timeout, workdir)
    return code


async def _client(
    options: DemoOptions, services: Services, board: Board, output: Output, interactive: bool, started: float
) -> int:
    """Publish, watch and answer until every order is done; returns the exit code."""
    sims = services.simulators
    output.clock = sims.oneatlas.core.clock.now  # both simulators share this clock
    async with kafka_clients(services.settings) as (producer, consumer):
        demo = Demo(options, services.settings, board, output, producer, interactive, fast_forward(sims))
        await demo.publish_samples()
        tasks = [asyncio.create_task(c) for c in (demo.watch(consumer), demo.decide(), demo.time_lapse())]
        try:
            await _until_done(demo, services.worker, started + options.timeout)
            await asyncio.sleep(DRAIN_SECONDS)
        except Timeout:
            return EXIT_TIMEOUT
        except WorkerStopped:
            output.console.print("[bold red]the worker stopped unexpectedly (see worker.log)[/]")
            return EXIT_FAILED
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return EXIT_OK if not board.problems() else EXIT_FAILED


async def _until_done(demo: Demo, worker: asyncio.Task[None], deadline: float) -> None:
    if not demo.output.live:
        await demo.until_done(deadline, worker)
        return
    with Live(demo.output, console=demo.output.console, refresh_per_second=4) as view:
        demo.live = view
        try:
            await demo.until_done(deadline, worker)
        finally:
            demo.live = None


def run(options: DemoOptions, console: Console) -> int:
    """Entry point of ``tasking-worker demo``: runs :func:`run_async` in a new event loop."""
    return asyncio.run(run_async(options, console))
