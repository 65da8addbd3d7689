"""``tasking-worker submit``: validate request/command files and publish the valid ones."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from worker.cli.base import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    _kafka_kwargs,
    _settings,
    command,
    console,
    errors,
    escape,
)

# Only what ``--help`` needs is imported here: each command imports its own modules when it
# runs (the whole service, aiokafka and the models would otherwise cost every command, even
# ``--help``, most of a second). Names below are for the type checker only.
if TYPE_CHECKING:
    from worker.config import Settings
    from worker.errors import DecodeError
    from worker.events.codec import InputKind
    from worker.events.models import Command, OrderRequest

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
        errors().print(f"[red]✗ {escape(problem)}[/]")
    loaded = [_load(path) for path in paths]
    for bad in (item for item in loaded if item.problems):
        errors().print(f"[red]✗ {escape(str(bad.path))}[/]")
        for problem in bad.problems:
            errors().print(f"    {escape(problem)}")
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
            errors().print(f"[red]Kafka error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
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
            console().print(
                f"[green]✓[/] published {what} [bold]{escape(message.request_id)}[/] "
                f"to {escape(meta.topic)}[{meta.partition}]@{meta.offset} "
                f"key={escape((record.key or b'').decode('utf-8', 'replace'))} ce_id={escape(ce_id)}"
            )
    finally:
        await producer.stop()
