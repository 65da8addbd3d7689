"""Where the items to download come from: a STAC Item file, or a request's delivery events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from worker.kafka.reader import keyed_records


def as_item(value: Any) -> dict[str, Any] | None:
    """A STAC Item from a JSON value: the item itself, or the ``data`` of a structured CloudEvent;
    ``None`` when it is neither."""
    if isinstance(value, dict) and "specversion" in value and isinstance(value.get("data"), dict):
        value = value["data"]
    if (
        isinstance(value, dict)
        and value.get("type") == "Feature"
        and isinstance(value.get("id"), str)
        and isinstance(value.get("assets"), dict)
    ):
        return value
    return None


def items_from_file(path: Path) -> list[dict[str, Any]]:
    """The items of a file: one STAC Item (or a CloudEvent holding one), or a FeatureCollection.

    Raises:
        ValueError: the file cannot be read or holds no STAC Item (the message says why).
    """
    try:
        content = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    values = (
        content.get("features")
        if isinstance(content, dict) and content.get("type") == "FeatureCollection"
        else [content]
    )
    items = [item for item in (as_item(v) for v in values or []) if item is not None]
    if not items:
        raise ValueError(f"{path}: not a STAC Item (type Feature with an id and assets)")
    return items


async def items_of_request(
    topic: str, request_id: str, kwargs: dict[str, Any]
) -> list[dict[str, Any]] | None:
    """The delivered items of ``request_id`` on the deliveries topic (one per item id, the latest
    event wins); ``None`` when the topic does not exist.

    Raises:
        aiokafka.errors.KafkaError: the cluster cannot be reached.
    """
    records = await keyed_records(topic, request_id, kwargs)
    if records is None:
        return None
    items: dict[str, dict[str, Any]] = {}
    for record in records:
        try:
            item = as_item(orjson.loads(record.value or b"null"))
        except orjson.JSONDecodeError:
            continue
        if (
            item is not None
            and item.get("properties", {}).get("tasking:request_id", request_id) == request_id
        ):
            items[item["id"]] = item
    return list(items.values())
