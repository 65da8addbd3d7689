"""The ``tasking-worker`` command line.

Commands:

* ``schemas``: write (or ``--check``) the generated JSON Schemas, AsyncAPI document and examples;
* ``submit``: validate request/command files and publish the valid ones (binary CloudEvents);
* ``tail``: follow the status, acquisition and dead-letter topics.

Kafka connection and topic names come from :class:`worker.config.Settings` (``TASKING_*``
variables); options override them. Exit codes: 0 success, 1 a check failed or Kafka is
unreachable, 2 bad input (invalid files or options).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.markup import escape

from worker.config import KafkaSettings, Settings, load_settings
from worker.errors import ConfigError, DecodeError
from worker.events import codec
from worker.events import schemas as schema_files
from worker.events.codec import EventType, InputKind
from worker.events.models import Command, OrderRequest
from worker.kafka.publisher import producer_options

app = typer.Typer(
    name="tasking-worker",
    help="Kafka worker that orders satellite tasking from Airbus OneAtlas and UP42.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def main() -> None:
    """Console-script entry point."""
    app()


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        errors.print(f"[red]invalid configuration:[/] {escape(exc.message)}")
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _kafka_kwargs(kafka: KafkaSettings, bootstrap_servers: str | None) -> dict[str, Any]:
    """aiokafka client arguments for the configured cluster; ``bootstrap_servers`` overrides."""
    options: dict[str, Any] = producer_options(kafka)
    if bootstrap_servers:
        options["bootstrap_servers"] = bootstrap_servers
    return options


# --------------------------------------------------------------------------- schemas


@app.command("schemas")
def schemas_command(
    out: Annotated[Path, typer.Option(help="Directory of the generated files.")] = Path("schemas"),
    check: Annotated[
        bool, typer.Option("--check", help="Only compare; exit 1 when a file differs.")
    ] = False,
) -> None:
    """Write the JSON Schemas, asyncapi.yaml and examples generated from the models."""
    if not check:
        written = schema_files.write(out)
        console.print(f"wrote {len(written)} files under {escape(str(out))}")
        return
    problems = schema_files.differences(out)
    for problem in problems:
        errors.print(f"[red]{escape(str(out))}/{escape(problem)}[/]")
    if problems:
        errors.print("run `tasking-worker schemas` and commit the result")
        raise typer.Exit(EXIT_FAILED)
    console.print(f"{escape(str(out))} is up to date")


# --------------------------------------------------------------------------- submit


@dataclass(frozen=True)
class _Loaded:
    """The messages of one file, or why it cannot be used."""

    path: Path
    messages: list[OrderRequest | Command]
    problems: list[str]


def _read_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return orjson.loads(text)
    return yaml.safe_load(text)


def _load(path: Path) -> _Loaded:
    """Parse one file (a message or a list of messages) and validate every message."""
    try:
        content = _read_file(path)
    except (OSError, UnicodeDecodeError, orjson.JSONDecodeError, yaml.YAMLError) as exc:
        return _Loaded(path, [], [f"cannot read: {str(exc).splitlines()[0]}"])
    items = content if isinstance(content, list) else [content]
    messages: list[OrderRequest | Command] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        where = f"[{index}] " if isinstance(content, list) else ""
        kind = InputKind.COMMAND if isinstance(item, dict) and "command" in item else (
            InputKind.REQUEST
        )
        try:
            messages.append(codec.validate_input(item, kind))
        except DecodeError as exc:
            problems.extend(f"{where}{line}" for line in _describe(exc, kind))
    return _Loaded(path, messages, problems)


def _describe(exc: DecodeError, kind: InputKind) -> Iterator[str]:
    fields = exc.details.get("errors")
    if not fields:
        yield f"{exc.code}: {exc.message}"
        return
    for field in fields:
        yield f"{exc.code} ({kind.value}) {field['field'] or '(message)'}: {field['message']}"


@app.command("submit")
def submit_command(
    files: Annotated[list[Path], typer.Argument(help="JSON or YAML files: a message or a list.")],
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers [default: from TASKING_KAFKA__*]")
    ] = None,
    topic_requests: Annotated[
        str | None, typer.Option(help="Requests topic [default: TASKING_TOPICS__REQUESTS]")
    ] = None,
    topic_commands: Annotated[
        str | None, typer.Option(help="Commands topic [default: TASKING_TOPICS__COMMANDS]")
    ] = None,
) -> None:
    """Validate order requests and commands, then publish the valid ones keyed by requestId.

    A message with a ``command`` field is a command, anything else a request. A file with any
    invalid message is not published at all; the exit code is then 2.
    """
    settings = _settings()
    loaded = [_load(path) for path in files]
    for bad in (item for item in loaded if item.problems):
        errors.print(f"[red]✗ {escape(str(bad.path))}[/]")
        for problem in bad.problems:
            errors.print(f"    {escape(problem)}")
    valid = [message for item in loaded if not item.problems for message in item.messages]
    topics = {
        InputKind.REQUEST: topic_requests or settings.topics.requests,
        InputKind.COMMAND: topic_commands or settings.topics.commands,
    }
    if valid:
        kwargs = _kafka_kwargs(settings.kafka, bootstrap_servers)
        try:
            asyncio.run(_publish(valid, topics, kwargs, settings))
        except KafkaError as exc:
            errors.print(f"[red]Kafka error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
            raise typer.Exit(EXIT_FAILED) from None
    if any(item.problems for item in loaded):
        raise typer.Exit(EXIT_BAD_INPUT)


async def _publish(
    messages: list[OrderRequest | Command],
    topics: dict[InputKind, str],
    kwargs: dict[str, Any],
    settings: Settings,
) -> None:
    producer = AIOKafkaProducer(
        enable_idempotence=settings.kafka.enable_idempotence, acks="all", **kwargs
    )
    await producer.start()
    try:
        for message in messages:
            kind = InputKind.COMMAND if isinstance(message, Command) else InputKind.REQUEST
            record = codec.encode_input(message, source=settings.ce_source)
            meta = await producer.send_and_wait(
                topics[kind], record.value, key=record.key, headers=record.headers
            )
            what = f"command {message.command}" if isinstance(message, Command) else (
                f"request ({message.provider.value})"
            )
            console.print(
                f"[green]✓[/] published {what} [bold]{escape(message.request_id)}[/] "
                f"to {escape(meta.topic)}[{meta.partition}]@{meta.offset}"
            )
    finally:
        await producer.stop()


# --------------------------------------------------------------------------- tail


@dataclass(frozen=True)
class _TailFilter:
    request_id: str | None
    status: str | None

    def accepts(self, key: bytes | None, event: dict[str, Any]) -> bool:
        if self.request_id is not None:
            key_id = key.decode("utf-8", "replace") if key is not None else None
            if self.request_id not in (key_id, event.get("requestId")):
                return False
        return self.status is None or event.get("status") == self.status


@app.command("tail")
def tail_command(
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print each event's JSON value on one line.")
    ] = False,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest retained events.")
    ] = False,
    request_id: Annotated[str | None, typer.Option(help="Only events of this request.")] = None,
    status: Annotated[str | None, typer.Option(help="Only events with this status.")] = None,
    max_messages: Annotated[
        int | None, typer.Option(min=1, help="Stop after printing this many events.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many seconds.")
    ] = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers [default: from TASKING_KAFKA__*]")
    ] = None,
) -> None:
    """Follow the status, acquisition and dead-letter topics and print each event."""
    settings = _settings()
    topics = [settings.topics.status, settings.topics.acquisitions, settings.topics.dead_letter]
    consumer_args = {
        **_kafka_kwargs(settings.kafka, bootstrap_servers),
        "auto_offset_reset": "earliest" if from_beginning else "latest",
    }
    printer = _print_json if json_lines else _print_pretty
    try:
        asyncio.run(_tail(topics, consumer_args, _TailFilter(request_id, status), printer,
                          max_messages, timeout))
    except KafkaError as exc:
        errors.print(f"[red]Kafka error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
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
    "COMPLETED": "bold green", "REJECTED": "bold red", "FAILED": "bold red",
    "CANCELLED": "yellow", "EXPIRED": "yellow", "DECISION_REQUIRED": "bold magenta",
}


def _print_pretty(record: Any, event: dict[str, Any]) -> None:
    ce_type = _ce_type(record)
    if ce_type == EventType.DEAD_LETTER or ("error" in event and "source" in event):
        console.print(_dead_letter_line(event))
    elif ce_type == EventType.ACQUISITION_STATUS or "acquisitionId" in event:
        console.print(_acquisition_line(event))
    else:
        console.print(_status_line(event))


def _status_line(event: dict[str, Any]) -> str:
    status = str(event.get("status", "?"))
    style = _STATUS_STYLE.get(status, "cyan")
    previous = event.get("previousStatus")
    arrow = f"{escape(str(previous))} → " if previous else ""
    reason = event.get("reason") or {}
    tail = f"  [dim]{escape(str(reason.get('code')))}: {escape(str(reason.get('message')))}[/]" \
        if reason else ""
    return (
        f"{escape(str(event.get('occurredAt', '')))} [bold]{escape(str(event.get('requestId')))}"
        f"[/] #{event.get('sequence', '?')} {escape(str(event.get('provider', '')))} "
        f"{arrow}[{style}]{escape(status)}[/] ({escape(str(event.get('stapiStatus', '')))})"
        f"{tail}"
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


# --------------------------------------------------------------------------- run


@app.command("run")
def run_command() -> None:
    """Run the worker service (configuration from TASKING_* variables).

    Exits 0 after a graceful drain on SIGTERM/SIGINT, 2 on invalid configuration, 1 on a fatal
    error. Logs one JSON object per line to stdout.

    Example: TASKING_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 tasking-worker run
    """
    from worker.app import run

    settings = _settings()
    try:
        code = asyncio.run(run(settings))
    except KafkaError as exc:
        errors.print(f"[red]fatal:[/] Kafka: {escape(type(exc).__name__)}: {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None
    raise typer.Exit(code)
