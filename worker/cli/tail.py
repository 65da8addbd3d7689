"""``tasking-worker tail``: follow the output topics, with the lines it prints."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from worker.cli.base import EXIT_FAILED, _kafka_kwargs, _settings, command, console, errors, escape

# Only what ``--help`` needs is imported here: each command imports its own modules when it
# runs (the whole service, aiokafka and the models would otherwise cost every command, even
# ``--help``, most of a second). Names below are for the type checker only.


# --------------------------------------------------------------------------- tail
@dataclass(frozen=True)
class _TailFilter:
    request_id: str | None
    status: str | None

    def accepts(self, key: bytes | None, event: dict[str, Any]) -> bool:
        if self.request_id is not None:
            key_id = key.decode("utf-8", "replace") if key is not None else None
            ids = (key_id, event.get("requestId"), _object(event, "properties").get("tasking:request_id"))
            if self.request_id not in ids:
                return False
        return self.status is None or event.get("status") == self.status


@command(
    "tail",
    "$ tasking-worker tail                                   # new events, as they come",
    "$ tasking-worker tail --from-beginning --request-id req-42",
    "$ tasking-worker tail --status DECISION_REQUIRED        # what waits for a customer",
    "$ tasking-worker tail --json --from-beginning --timeout 10 | jq .status",
)
def tail_command(
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print each event's JSON value on one line.")
    ] = False,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest retained events.")
    ] = False,
    request_id: Annotated[
        str | None, typer.Option(help="Only events of this request (Kafka key or requestId).")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only events with this status: an order status (COMPLETED, ...) or an "
            "acquisition status (PROPOSED, ...)."
        ),
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option(min=1, help="Stop after printing this many events.")
    ] = None,
    timeout: Annotated[float | None, typer.Option(min=0, help="Stop after this many seconds.")] = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers [default: from TASKING_KAFKA__*]")
    ] = None,
) -> None:
    """Follow the status, acquisition, delivery and dead-letter topics and print each event.

    Reads without a consumer group (nothing is committed; any number of tails can run). Stops
    with Ctrl-C, after --max-messages printed events or after --timeout seconds (exit 0).
    """
    import asyncio

    from aiokafka.errors import KafkaError

    settings = _settings()
    topics = [
        settings.topics.status,
        settings.topics.acquisitions,
        settings.topics.deliveries,
        settings.topics.dead_letter,
    ]
    consumer_args = {
        **_kafka_kwargs(settings.kafka, bootstrap_servers),
        "auto_offset_reset": "earliest" if from_beginning else "latest",
    }
    printer = _print_json if json_lines else _print_pretty
    try:
        asyncio.run(
            _tail(topics, consumer_args, _TailFilter(request_id, status), printer, max_messages, timeout)
        )
    except KafkaError as exc:
        errors().print(f"[red]Kafka error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        pass


async def _tail(
    topics: list[str],
    consumer_args: dict[str, Any],
    keep: _TailFilter,
    printer: Callable[[Any, dict[str, Any]], None],
    max_messages: int | None,
    timeout: float | None,
) -> None:
    from aiokafka import AIOKafkaConsumer

    # No consumer group: tail is read-only and must not disturb (or wait for) any group.
    consumer = AIOKafkaConsumer(*topics, group_id=None, enable_auto_commit=False, **consumer_args)
    deadline = None if timeout is None else time.monotonic() + timeout
    printed = 0
    await consumer.start()
    try:
        while True:
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0:
                return
            batches = await consumer.getmany(timeout_ms=int(wait * 1000))
            for record in (r for batch in batches.values() for r in batch):
                event = _parse_event(record.value)
                if not keep.accepts(record.key, event):
                    continue
                printer(record, event)
                printed += 1
                if printed == max_messages:
                    return
    finally:
        await consumer.stop()


def _parse_event(value: bytes | None) -> dict[str, Any]:
    import orjson

    try:
        parsed = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _ce_type(record: Any) -> str:
    for name, value in record.headers or ():
        if name == "ce_type" and value is not None:
            return str(value.decode("utf-8", "replace"))
    return ""


def _print_json(record: Any, event: dict[str, Any]) -> None:
    # The value as published (our encoder writes compact JSON), one event per line.
    typer.echo((record.value or b"").decode("utf-8", "replace"))


_STATUS_STYLE = {
    "COMPLETED": "bold green",
    "REJECTED": "bold red",
    "FAILED": "bold red",
    "CANCELLED": "yellow",
    "EXPIRED": "yellow",
    "DECISION_REQUIRED": "bold magenta",
}


def _print_pretty(record: Any, event: dict[str, Any]) -> None:
    from worker.events.codec import EventType

    ce_type = _ce_type(record)
    if ce_type == EventType.DEAD_LETTER or ("error" in event and "source" in event):
        console().print(_dead_letter_line(event))
    elif ce_type == EventType.ACQUISITION_STATUS or "acquisitionId" in event:
        console().print(_acquisition_line(event))
    elif ce_type == EventType.DELIVERY or event.get("type") == "Feature":
        console().print(_delivery_line(event))
    else:
        console().print(_status_line(event))


def _status_line(event: dict[str, Any]) -> str:
    status = str(event.get("status", "?"))
    style = _STATUS_STYLE.get(status, "cyan")
    previous = event.get("previousStatus")
    arrow = f"{escape(str(previous))} → " if previous else ""
    reason = event.get("reason") or {}
    tail = (
        f"  [dim]{escape(str(reason.get('code')))}: {escape(str(reason.get('message')))}[/]" if reason else ""
    )
    return (
        f"{escape(str(event.get('occurredAt', '')))} [bold]{escape(str(event.get('requestId')))}"
        f"[/] #{event.get('sequence', '?')} {escape(str(event.get('provider', '')))} "
        f"{arrow}[{style}]{escape(status)}[/] ({escape(str(event.get('stapiStatus', '')))})"
        f"{tail}"
    )


def _object(event: dict[str, Any], name: str) -> dict[str, Any]:
    value = event.get(name)
    return value if isinstance(value, dict) else {}


def _delivery_line(event: dict[str, Any]) -> str:
    """A delivered product (a STAC Item): request, item id, time, assets with the data role."""
    props, assets = _object(event, "properties"), _object(event, "assets")
    data = [k for k, a in assets.items() if isinstance(a, dict) and "data" in (a.get("roles") or [])]
    when = props.get("datetime") or props.get("start_datetime") or ""
    request, provider = props.get("tasking:request_id"), props.get("tasking:provider", "")
    return (
        f"{escape(str(when))} [bold]{escape(str(request))}[/] {escape(str(provider))} "
        f"[green]delivered[/] {escape(str(event.get('id')))} "
        f"({len(assets)} asset(s); data: {escape(', '.join(data))})"
    )


def _acquisition_line(event: dict[str, Any]) -> str:
    cloud = event.get("cloudCover")
    cloud_text = f" cloud {cloud}%" if cloud is not None else ""
    return (
        f"{escape(str(event.get('occurredAt', '')))} [bold]{escape(str(event.get('requestId')))}"
        f"[/] acquisition {escape(str(event.get('acquisitionId')))} "
        f"[cyan]{escape(str(event.get('status')))}[/]{cloud_text}"
    )


def _dead_letter_line(event: dict[str, Any]) -> str:
    error = event.get("error") or {}
    source = event.get("source") or {}
    return (
        f"{escape(str(event.get('receivedAt', '')))} [bold red]dead letter[/] "
        f"{escape(str(error.get('code')))} from {escape(str(source.get('topic')))}"
        f"[{source.get('partition')}]@{source.get('offset')}: {escape(str(error.get('message')))}"
    )
