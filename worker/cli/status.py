"""``tasking-worker status``: the latest status event of one request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from worker.cli.base import (
    EXIT_FAILED,
    EXIT_TIMEOUT,
    _kafka_kwargs,
    _settings,
    command,
    console,
    errors,
    escape,
)
from worker.cli.tail import _status_line

# Only what ``--help`` needs is imported here: each command imports its own modules when it
# runs (the whole service, aiokafka and the models would otherwise cost every command, even
# ``--help``, most of a second). Names below are for the type checker only.
if TYPE_CHECKING:
    from worker.config import Settings
    from worker.events.models import OrderStatusEvent


# --------------------------------------------------------------------------- status
@command(
    "status",
    "$ tasking-worker status req-toulouse-2025-06-001",
    "$ tasking-worker status req-toulouse-2025-06-001 --json | jq .providerRefs",
)
def status_command(
    request_id: Annotated[str, typer.Argument(help="The request's requestId.")],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the event's JSON value on one line.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Give up (exit 3) after this many seconds.")] = 60.0,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers [default: from TASKING_KAFKA__*]")
    ] = None,
) -> None:
    """Print the latest status event of one request (exit 1 when there is none).

    Reads the status topic without a consumer group, from the oldest retained event up to the
    current end of the partition that holds the request's key (events are keyed by requestId
    with the default partitioner), and keeps the event with the highest sequence. A consumer can
    rebuild the whole state of a request from that event.

    Also prints the partition of the requests topic that holds the request: the worker instance
    that owns it is the one whose partitions_assigned log line lists that partition.
    """
    import asyncio

    from aiokafka.errors import KafkaError

    settings = _settings()
    kwargs = _kafka_kwargs(settings.kafka, bootstrap_servers)
    try:
        found, partition = asyncio.run(
            asyncio.wait_for(_status_and_partition(settings, request_id, kwargs), timeout)
        )
    except TimeoutError:
        errors().print(f"[red]timeout:[/] the status topic was not read within {timeout:g} s")
        raise typer.Exit(EXIT_TIMEOUT) from None
    except KafkaError as exc:
        errors().print(f"[red]Kafka error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None
    if found is None:
        errors().print(
            f"no status event for [bold]{escape(request_id)}[/] on {escape(settings.topics.status)}"
        )
        raise typer.Exit(EXIT_FAILED)
    if json_output:
        typer.echo(found.model_dump_json(by_alias=True))
    else:
        _print_status(found)
        if partition is not None:
            console().print(
                f"  [bold]partition[/]: {partition} of {escape(settings.topics.requests)} (owned by the "
                f"instance whose partitions_assigned log lists {partition})"
            )


async def _status_and_partition(
    settings: Settings, request_id: str, kwargs: dict[str, Any]
) -> tuple[OrderStatusEvent | None, int | None]:
    from worker.kafka.reader import request_partition

    found = await latest_status(settings.topics.status, request_id, kwargs)
    partition = await request_partition(settings.topics.requests, request_id, kwargs)
    return found, partition


async def latest_status(topic: str, request_id: str, kwargs: dict[str, Any]) -> OrderStatusEvent | None:
    """The status event of ``request_id`` with the highest sequence, or ``None`` (also when the
    topic does not exist: it is never created)."""
    from worker.kafka.reader import keyed_records

    records = await keyed_records(topic, request_id, kwargs)
    latest: OrderStatusEvent | None = None
    for record in records or []:
        event = _status_event(record.value)
        if (
            event is not None
            and event.request_id == request_id
            and (latest is None or event.sequence >= latest.sequence)
        ):
            latest = event
    return latest


def _status_event(value: bytes | None) -> OrderStatusEvent | None:
    from pydantic import ValidationError

    from worker.events.models import OrderStatusEvent

    try:
        return OrderStatusEvent.model_validate_json(value or b"")
    except ValidationError:
        return None


def _print_status(event: OrderStatusEvent) -> None:
    import orjson

    from worker.display import offer_lines

    data = event.to_json_dict()
    console().print(_status_line(data))
    for name in ("providerRefs", "feasibility", "price", "decision", "progress", "reason"):
        value = data.get(name)
        if value:
            console().print(f"  [bold]{name}[/]: {escape(orjson.dumps(value).decode())}")
    if data.get("offers"):
        console().print("  [bold]offers[/] (preferred first):")
        for line in offer_lines(data["offers"]):
            console().print(f"    {escape(line)}")
