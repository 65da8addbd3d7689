"""The ``tasking-worker`` command line.

Commands:

* ``run``: the service (configuration from ``TASKING_*`` variables);
* ``demo``: the embedded broker, both provider simulators, the worker and sample orders on this
  machine, with a live view and a summary (``worker.demo``);
* ``simulate``: only the provider simulators, as HTTP servers, with the variables that point a
  worker at them;
* ``submit``: validate request/command files (or every file of a directory) and publish the valid
  ones (binary CloudEvents);
* ``tail``: follow the status, acquisition and dead-letter topics, optionally filtered;
* ``status``: the latest status event of one request;
* ``download``: the delivered products of a request (or of one STAC Item file) to local files;
* ``check``: connect with the configured settings and check the contract topics (one line per
  check; a Helm test hook or init container; ``worker.commands.check``);
* ``schemas``: write (or ``--check``) the generated JSON Schemas, AsyncAPI document and examples;
* ``docs``: write (or ``--check``) the generated references under ``docs/reference/`` and the
  chart README (``worker.commands.docs``).

Kafka connection and topic names come from :class:`worker.config.Settings` (``TASKING_*``
variables); options override them. Every command's ``--help`` shows examples.

Exit codes (the same for every command):

====  ==========================================================================================
code  meaning
====  ==========================================================================================
0     success
1     failure: a check failed, a demo order missed its expected status, a request was not
      found, Kafka is unreachable, or a fatal error
2     bad input or configuration: invalid files, options or ``TASKING_*`` variables
3     timeout: ``demo --timeout`` (or ``status --timeout``) passed before the work was done
130   interrupted (Ctrl-C) where that is not the normal way to stop
====  ==========================================================================================
"""

from __future__ import annotations

import contextlib
import inspect
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

# Only what ``--help`` needs is imported here: each command imports its own modules when it
# runs (the whole service, aiokafka and the models would otherwise cost every command, even
# ``--help``, most of a second). Names below are for the type checker only.
if TYPE_CHECKING:
    from worker.config import KafkaSettings, Settings
    from worker.errors import DecodeError
    from worker.events.codec import InputKind
    from worker.events.models import Command, OrderRequest, OrderStatusEvent

app = typer.Typer(
    name="tasking-worker",
    help="Kafka worker that orders satellite tasking from Airbus OneAtlas and UP42.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def _register_subcommands() -> None:
    from worker.commands.stac import stac_app

    app.add_typer(stac_app, name="stac")


_register_subcommands()

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130

# ``worker.demo``'s defaults (DEFAULT_TIMEOUT, DEFAULT_SPEED), repeated so that ``--help`` does
# not import the demo (tests/unit/test_cli_lazy.py keeps them equal).
DEMO_TIMEOUT = 110.0
DEMO_SPEED = 2 * 86_400.0


F = TypeVar("F", bound=Callable[..., Any])


def prose(text: str) -> str:
    """A docstring as ``--help`` text: paragraphs kept, the line breaks inside them removed (the
    help renderer would keep them and wrap the lines a second time)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def command(name: str, *example_lines: str) -> Callable[[F], F]:
    """Register a command whose ``--help`` is its docstring followed by ``Examples:``."""

    def register(function: F) -> F:
        epilog = "Examples:\n\n" + "\n\n".join(example_lines)
        app.command(name, help=prose(function.__doc__ or ""), epilog=epilog)(function)
        return function

    return register


def main() -> None:
    """Console-script entry point."""
    app()


def _settings() -> Settings:
    from worker.config import load_settings
    from worker.errors import ConfigError

    try:
        return load_settings()
    except ConfigError as exc:
        errors.print(f"[red]invalid configuration:[/] {escape(exc.message)}")
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _kafka_kwargs(kafka: KafkaSettings, bootstrap_servers: str | None) -> dict[str, Any]:
    """aiokafka client arguments for the configured cluster; ``bootstrap_servers`` overrides."""
    from worker.kafka.publisher import producer_options

    options: dict[str, Any] = producer_options(kafka)
    if bootstrap_servers:
        options["bootstrap_servers"] = bootstrap_servers
    return options


# --------------------------------------------------------------------------- schemas


@command(
    "schemas",
    "$ tasking-worker schemas                # regenerate schemas/",
    "$ tasking-worker schemas --check        # exit 1 when schemas/ is out of date (CI)",
)
def schemas_command(
    out: Annotated[Path, typer.Option(help="Directory of the generated files.")] = Path("schemas"),
    check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 when a file differs.")] = False,
) -> None:
    """Write the JSON Schemas, asyncapi.yaml and examples generated from the models."""
    from worker.events import schemas as schema_files

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


INPUT_SUFFIXES = frozenset({".json", ".yaml", ".yml"})


def expand_paths(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Files to read: each file as given, each directory's ``*.json``/``*.yaml``/``*.yml`` files
    sorted by name (not recursive). Returns ``(files, problems)``; a directory without any such
    file is a problem."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES)
        if not found:
            problems.append(f"{path}: no .json, .yaml or .yml file in this directory")
        files.extend(found)
    return files, problems


@dataclass(frozen=True)
class _Loaded:
    """The messages of one file, or why it cannot be used."""

    path: Path
    messages: list[OrderRequest | Command]
    problems: list[str]


def _read_file(path: Path) -> Any:
    import orjson
    import yaml

    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return orjson.loads(text)
    return yaml.safe_load(text)


def _load(path: Path) -> _Loaded:
    """Parse one file (a message or a list of messages) and validate every message."""
    import orjson
    import yaml

    from worker.errors import DecodeError
    from worker.events import codec
    from worker.events.codec import InputKind

    try:
        content = _read_file(path)
    except (OSError, UnicodeDecodeError, orjson.JSONDecodeError, yaml.YAMLError) as exc:
        return _Loaded(path, [], [f"cannot read: {str(exc).splitlines()[0]}"])
    items = content if isinstance(content, list) else [content]
    messages: list[OrderRequest | Command] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        where = f"[{index}] " if isinstance(content, list) else ""
        kind = InputKind.COMMAND if isinstance(item, dict) and "command" in item else (InputKind.REQUEST)
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


@command(
    "submit",
    "$ tasking-worker submit order.json                    # one request",
    "$ tasking-worker submit requests/ approve.yaml        # every file of a directory, then a command",
    "$ TASKING_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 tasking-worker submit worker/samples/",
)
def submit_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="JSON or YAML files (a message or a list of messages), or directories: every "
            "*.json, *.yaml and *.yml file in them, sorted by name."
        ),
    ],
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers \\[default: from TASKING_KAFKA__*]")
    ] = None,
    topic_requests: Annotated[
        str | None, typer.Option(help="Requests topic \\[default: TASKING_TOPICS__REQUESTS]")
    ] = None,
    topic_commands: Annotated[
        str | None, typer.Option(help="Commands topic \\[default: TASKING_TOPICS__COMMANDS]")
    ] = None,
) -> None:
    """Validate order requests and commands, then publish the valid ones keyed by requestId.

    A message with a "command" field is a command, anything else a request. A file with any
    invalid message is not published at all; the exit code is then 2. Each published message is
    printed with its topic, partition, offset, key and ce_id.
    """
    import asyncio

    from aiokafka.errors import KafkaError

    from worker.events.codec import InputKind

    settings = _settings()
    paths, path_problems = expand_paths(files)
    for problem in path_problems:
        errors.print(f"[red]✗ {escape(problem)}[/]")
    loaded = [_load(path) for path in paths]
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
    if path_problems or any(item.problems for item in loaded):
        raise typer.Exit(EXIT_BAD_INPUT)


async def _publish(
    messages: list[OrderRequest | Command],
    topics: dict[InputKind, str],
    kwargs: dict[str, Any],
    settings: Settings,
) -> None:
    from aiokafka import AIOKafkaProducer

    from worker.events import codec
    from worker.events.codec import InputKind
    from worker.events.models import Command

    producer = AIOKafkaProducer(enable_idempotence=settings.kafka.enable_idempotence, acks="all", **kwargs)
    await producer.start()
    try:
        for message in messages:
            kind = InputKind.COMMAND if isinstance(message, Command) else InputKind.REQUEST
            record = codec.encode_input(message, source=settings.ce_source)
            meta = await producer.send_and_wait(
                topics[kind], record.value, key=record.key, headers=record.headers
            )
            what = (
                f"command {message.command}"
                if isinstance(message, Command)
                else (f"request ({message.provider.value})")
            )
            ce_id = dict(record.headers).get("ce_id", b"").decode("utf-8", "replace")
            console.print(
                f"[green]✓[/] published {what} [bold]{escape(message.request_id)}[/] "
                f"to {escape(meta.topic)}[{meta.partition}]@{meta.offset} "
                f"key={escape((record.key or b'').decode('utf-8', 'replace'))} ce_id={escape(ce_id)}"
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
        str | None, typer.Option(help="Kafka bootstrap servers \\[default: from TASKING_KAFKA__*]")
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
        console.print(_dead_letter_line(event))
    elif ce_type == EventType.ACQUISITION_STATUS or "acquisitionId" in event:
        console.print(_acquisition_line(event))
    elif ce_type == EventType.DELIVERY or event.get("type") == "Feature":
        console.print(_delivery_line(event))
    else:
        console.print(_status_line(event))


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


# --------------------------------------------------------------------------- run


@command(
    "run",
    "$ TASKING_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 TASKING_ONEATLAS__API_KEY=... tasking-worker run",
    "$ TASKING_LOG_FORMAT=console TASKING_HTTP__PORT=9090 tasking-worker run",
)
def run_command() -> None:
    """Run the worker service (configuration from TASKING_* variables).

    Exits 0 after a graceful drain on SIGTERM/SIGINT, 2 on invalid configuration, 1 on a fatal
    error. Logs one JSON object per line to stdout.

    """
    import asyncio

    from aiokafka.errors import KafkaError

    from worker.app import run
    from worker.errors import WorkerError

    settings = _settings()
    try:
        code = asyncio.run(run(settings))
    except WorkerError as exc:  # topics not usable, an unusable TLS file: the one line says which
        errors.print(f"[red]fatal:[/] {escape(exc.message)}")
        raise typer.Exit(EXIT_FAILED) from None
    except KafkaError as exc:
        errors.print(f"[red]fatal:[/] Kafka: {escape(type(exc).__name__)}: {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None
    raise typer.Exit(code)


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
        str | None, typer.Option(help="Kafka bootstrap servers \\[default: from TASKING_KAFKA__*]")
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
        errors.print(f"[red]timeout:[/] the status topic was not read within {timeout:g} s")
        raise typer.Exit(EXIT_TIMEOUT) from None
    except KafkaError as exc:
        errors.print(f"[red]Kafka error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None
    if found is None:
        errors.print(f"no status event for [bold]{escape(request_id)}[/] on {escape(settings.topics.status)}")
        raise typer.Exit(EXIT_FAILED)
    if json_output:
        typer.echo(found.model_dump_json(by_alias=True))
    else:
        _print_status(found)
        if partition is not None:
            console.print(
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
    console.print(_status_line(data))
    for name in ("providerRefs", "feasibility", "price", "decision", "progress", "reason"):
        value = data.get(name)
        if value:
            console.print(f"  [bold]{name}[/]: {escape(orjson.dumps(value).decode())}")
    if data.get("offers"):
        console.print("  [bold]offers[/] (preferred first):")
        for line in offer_lines(data["offers"]):
            console.print(f"    {escape(line)}")


# --------------------------------------------------------------------------- download


@command(
    "download",
    "$ tasking-worker download req-toulouse-2025-06-001 --dest ./products",
    "$ tasking-worker download item.json             # one STAC Item (a delivery event's value)",
    "$ tasking-worker download req-42 --all-assets --plain",
)
def download_command(
    target: Annotated[str, typer.Argument(help="A requestId, or a STAC Item JSON file (ITEM.json).")],
    dest: Annotated[Path, typer.Option(help="Directory of the files (one folder per item).")] = Path(),
    all_assets: Annotated[
        bool, typer.Option("--all-assets", help="Also quicklooks, thumbnails and metadata, not only data.")
    ] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Plain lines instead of progress bars.")] = False,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers \\[default: from TASKING_KAFKA__*]")
    ] = None,
) -> None:
    """Download the delivered products of a request (read from the deliveries topic) or of one
    STAC Item file, with the provider credentials of the TASKING_* variables.

    Each data asset goes to DEST/ITEM_ID/ with a progress bar (plain lines without a terminal);
    a partial file is resumed with an HTTP range; size and checksum are verified when known; a
    copy of the item whose hrefs point at the local files is written beside them. Running it
    again transfers nothing that is complete. Exits 0 when every file is there, 1 when one
    failed (expired, not found, refused credentials, checksum mismatch) or no product was found,
    2 on a bad item file or missing credentials.
    """
    import asyncio

    from worker.delivery.command import DownloadOptions, run

    settings = _settings()
    options = DownloadOptions(
        target=target,
        dest=dest,
        all_assets=all_assets,
        bars=sys.stdout.isatty() and not plain,
        bootstrap_servers=bootstrap_servers,
    )
    try:
        code = asyncio.run(run(settings, options, console, errors))
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    raise typer.Exit(code)


# --------------------------------------------------------------------------- simulate


@command(
    "simulate",
    "$ tasking-worker simulate                                  # real-time clock, free ports",
    "$ tasking-worker simulate --speed 3600 --oneatlas-port 8701 --up42-port 8702",
    "$ tasking-worker simulate > sim.env   # then, in another shell: set -a; . ./sim.env; tasking-worker run",
)
def simulate_command(
    speed: Annotated[
        float, typer.Option(min=0.001, help="Simulated seconds per real second (3600: an hour per second).")
    ] = 1.0,
    oneatlas_port: Annotated[
        int, typer.Option(min=0, max=65535, help="OneAtlas simulator port (0: a free one).")
    ] = 0,
    up42_port: Annotated[
        int, typer.Option(min=0, max=65535, help="UP42 simulator port (0: a free one).")
    ] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Run only the OneAtlas and UP42 simulators as HTTP servers, until Ctrl-C.

    Prints the TASKING_* variables (URLs and the simulators' own test credentials) that point a
    worker at them, one KEY=value line each on stdout, so the output can be sourced. Operator
    controls (studies, quotations, faults, clock) are under /_sim/ on each server.
    """
    import asyncio

    try:
        asyncio.run(_simulate(speed, host, oneatlas_port, up42_port))
    except OSError as exc:
        errors.print(f"[red]cannot listen:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except KeyboardInterrupt:
        pass


async def _simulate(speed: float, host: str, oneatlas_port: int, up42_port: int) -> None:
    from worker.simulators.server import start_simulators

    sims = await start_simulators(speed, host, oneatlas_port, up42_port)
    try:
        errors.print(
            f"OneAtlas simulator on {sims.oneatlas_url}, UP42 simulator on {sims.up42_url} "
            f"(clock x{speed:g}); Ctrl-C stops them"
        )
        for name, value in sims.worker_env().items():
            typer.echo(f"{name}={shlex.quote(value)}")
        sys.stdout.flush()
        await _until_signal()
    finally:
        await sims.stop()


async def _until_signal() -> None:
    """Wait for SIGINT or SIGTERM (Ctrl-C stops the servers cleanly, not with a traceback)."""
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# --------------------------------------------------------------------------- demo


@command(
    "demo",
    "$ tasking-worker demo                       # live table; asks you at every decision",
    "$ tasking-worker demo --auto-approve        # answers like an automated client (make demo)",
    "$ tasking-worker demo --plain --auto-approve --timeout 110   # one line per event (CI)",
)
def demo_command(
    auto_approve: Annotated[
        bool,
        typer.Option(
            "--auto-approve",
            help="Answer decisions like an automated client: approve prices within budget, reject "
            "the over-budget one, choose the first feasibility option, accept proposed "
            "acquisitions. Implied without a terminal.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Give up (exit 3) after this many seconds.")
    ] = DEMO_TIMEOUT,
    speed: Annotated[
        float,
        typer.Option(
            min=1,
            help="Time-lapse: simulated seconds per real second while every open order "
            "waits on its provider (172800: two days per second).",
        ),
    ] = DEMO_SPEED,
    plain: Annotated[
        bool, typer.Option("--plain", help="Plain progress lines instead of the live table; never prompts.")
    ] = False,
) -> None:
    """Run everything on this machine: embedded broker, both provider simulators, the worker and
    the sample orders of worker/samples/, with a live view and a final summary.

    Exits 0 when every sample ends in its expected status (docs/demo.md lists them), 1 when one
    does not, 3 on --timeout. Logs of the worker and the broker are kept in a temporary directory
    printed at the end.
    """
    from worker.demo import DemoOptions, run

    options = DemoOptions(auto_approve=auto_approve, timeout=timeout, speed=speed, plain=plain)
    terminal = sys.stdout.isatty()
    # Without a terminal rich would wrap the summary at 80 columns; wide lines read better in logs.
    demo_console = Console(highlight=False, width=None if terminal else 200)
    try:
        code = run(options, demo_console)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    raise typer.Exit(code)


# --------------------------------------------------------------------------- commands in their own modules

from worker.commands import check as _check_command  # noqa: E402 - registered after the built-in ones
from worker.commands import docs as _docs_command  # noqa: E402

_docs_command.register(app)
_check_command.register(app)
