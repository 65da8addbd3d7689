"""Every producer gets an answer (CONTRACT §3.1, §3.2, §4.4), through the embedded broker and a
worker in process:

* a duplicate request is answered by publishing its latest status event again (same ``ce_id``,
  same bytes);
* a used id with other content (a corrected re-send) is dead-lettered ``REQUEST_ID_REUSED``,
  naming the first request's status, also when the id was burnt by an invalid request;
* the same invalid request sent again gets its dead letter and its ``REJECTED`` event again;
* a command for a request the worker never received is dead-lettered ``UNKNOWN_REQUEST``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from harness import oneatlas_request, running_worker, stack_for

from worker.config import TopicSettings
from worker.events.models import Command
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


def copies(events: Any, request_id: str, sequence: int) -> int:
    return sum(1 for e in events.status[request_id] if e["sequence"] == sequence)


def dead(events: Any, code: str) -> list[dict[str, Any]]:
    return [d for d in events.dead_letters if d["error"]["code"] == code]


async def test_duplicates_reused_ids_and_unknown_requests_are_answered(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    async with stack_for(broker, unique_topics) as (stack, events), running_worker(stack):
        first = oneatlas_request("answered-1", dryRun=True)
        await stack.publish(first)
        quoted = await events.wait_status("answered-1", "QUOTED", timeout=40)
        assert copies(events, "answered-1", quoted["sequence"]) == 1

        await stack.publish(first)  # the producer retries: answered with the latest status
        await events.wait_for(lambda: copies(events, "answered-1", quoted["sequence"]) == 2, 20)
        headers = [
            h
            for h in events.headers["answered-1"]
            if h["ce_id"] == f"answered-1:{quoted['sequence']}".encode()
        ]
        assert len(headers) == 2
        assert events.statuses("answered-1") == ["RECEIVED", "FEASIBLE", "QUOTED"]

        corrected = oneatlas_request("answered-1", dryRun=True, constraints={"maxCloudCover": 5})
        await stack.publish(corrected)
        await events.wait_for(lambda: len(dead(events, "REQUEST_ID_REUSED")) == 1, 20)
        reused = dead(events, "REQUEST_ID_REUSED")[0]["error"]
        assert reused["details"]["firstOutcome"]["status"] == "QUOTED"
        assert reused["details"]["firstOutcome"]["ceId"] == f"answered-1:{quoted['sequence']}"
        assert "new requestId" in reused["message"]

        bad = orjson.dumps({"requestId": "answered-2", "provider": "oneatlas", "aoi": 1})
        await stack.publish(raw=[(unique_topics.requests, b"answered-2", bad)])
        rejected = await events.wait_status("answered-2", "REJECTED", timeout=20)
        await stack.publish(raw=[(unique_topics.requests, b"answered-2", bad)])  # the same again
        await events.wait_for(lambda: copies(events, "answered-2", 1) == 2, 20)
        await events.wait_for(lambda: len(dead(events, "SCHEMA_VIOLATION")) == 2, 20)
        await stack.publish(oneatlas_request("answered-2", dryRun=True))  # corrected, same id
        await events.wait_for(lambda: len(dead(events, "REQUEST_ID_REUSED")) == 2, 20)
        burnt = dead(events, "REQUEST_ID_REUSED")[1]["error"]
        assert burnt["details"]["firstOutcome"]["status"] == "REJECTED"
        assert (
            burnt["details"]["firstOutcome"]["reasonCode"] == rejected["reason"]["code"] == "INVALID_REQUEST"
        )
        assert events.statuses("answered-2") == ["REJECTED"]

        unknown = Command.model_validate(
            {"requestId": "never-sent", "commandId": "c-1", "command": "cancel", "issuedBy": "tester"}
        )
        await stack.publish(unknown)
        await events.wait_for(lambda: len(dead(events, "UNKNOWN_REQUEST")) == 1, 20)
        assert dead(events, "UNKNOWN_REQUEST")[0]["error"]["message"].startswith("no request 'never-sent'")
        assert "never-sent" not in events.status
        assert stack.sims.oneatlas.paid_order_count("answered-1") == 0
