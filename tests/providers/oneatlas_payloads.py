"""OneAtlas payloads shaped exactly like the reference (``reference/oneatlas-api.md`` §1, §3, §5).

Where the reference gives a verbatim example it is reproduced as is (ids, typos and quirks
included); builders produce more of the same shape for paging and status tests.
"""

from __future__ import annotations

import copy
from typing import Any

from worker.config import HttpClientSettings, OneAtlasSettings
from worker.events.models import OrderRequest

AUTH_PATH = "/auth/realms/IDP/protocol/openid-connect/token"

# §1: the token answer (example says "Bearer", the schema enum "bearer").
TOKEN = {
    "access_token": "eyJhbGciOiJSUzI1NiJ9.sim.payload",
    "expires_in": 3600,
    "refresh_expires_in": 0,
    "token_type": "Bearer",
    "not-before-policy": 0,
    "session_state": "4b1c2c4e-8f1a-4d2b-9c43-0d3e1a2b3c4d",
    "scope": "",
}

# §3.1 feasibility answers (legacy with automationName; PNEO with expirationDate).
FEASIBILITY_LEGACY = {
    "progCapacities": [
        {
            "mission": "PLEIADES",
            "progTypes": [
                {
                    "name": "ONEPLAN",
                    "mission": "PLEIADES",
                    "feasibility": {
                        "classification": "CHALLENGING",
                        "automation": "AUTOMATIC",
                        "automationName": "AutomaticTasking30",
                    },
                    "available": True,
                }
            ],
        }
    ]
}

FEASIBILITY_NEO = {
    "progCapacities": [
        {
            "mission": "PLEIADESNEO",
            "progTypes": [
                {
                    "name": "ONEPLAN",
                    "mission": "PLEIADESNEO",
                    "feasibility": {"classification": "CHALLENGING", "automation": "AUTOMATIC"},
                    "available": True,
                    "expirationDate": "2021-05-12T08:03:19.052Z",
                }
            ],
        }
    ]
}

# The response schema's enum typo.
FEASIBILITY_MAUAL = {
    "progCapacities": [
        {
            "mission": "PLEIADES",
            "progTypes": [
                {
                    "name": "ONEPLAN",
                    "mission": "PLEIADES",
                    "feasibility": {"classification": "EASY", "automation": "MAUAL", "automationName": ""},
                    "available": True,
                }
            ],
        }
    ]
}

# Seed guide, Step 3: the AOI-size error answer.
ATTEMPTS_MIN_AOI = {
    "progCapacities": [
        {
            "mission": "PLEIADES",
            "progTypes": [
                {
                    "name": "ONEDAY",
                    "mission": "PLEIADES",
                    "errors": [{"code": "ERR_MIN_AOI_AREA", "locator": "AOI", "message": "24.5"}],
                    "segments": [],
                    "available": False,
                }
            ],
        }
    ]
}

SEED_WKT = (
    "POLYGON((1.298502 43.665978, 1.298175 43.535609, 1.589621 43.53495, "
    "1.589271 43.665975, 1.298502 43.665978, 1.298502 43.665978))"
)
SEED_SEGMENT_KEY = (
    "ea60293f38ee6de7542b51f8028bab3244de9e25b9dcb8c7d94095c14ca29d70dbbe78c03462eff457763bc8551c5b66"
    'dc0852688bbfd731f7e3e2b00b451e37::[{"key":"acqPeriod", "value":"2021-05-31T11:10:44.099Z '
    '2021-05-31T11:10:45.552Z"},{"key":"extendedAngle", "value":false},{"key":"geometryWkt", '
    '"value":"' + SEED_WKT + '"},{"key":"orderDeadLine", "value":"2021-05-31T02:55:00.099Z"},'
    '{"key":"maxCloudCover", "value":"25.0"},{"key":"maxIncidenceAngle", "value":"30.0"}]'
)

SEED_SEGMENT = {
    "id": "PHR1",
    "footprint": {"geometry": SEED_WKT, "center": "POINT(1.444014 43.600603)"},
    "instrumentMode": "THR",
    "orderDeadline": "2021-05-31T02:55:00.099Z",
    "extendedAngle": False,
    "acquisitionStartDate": "2021-05-31T11:10:44.099Z",
    "acquisitionEndDate": "2021-05-31T11:10:45.552Z",
    "incidenceAngle": 26.3,
    "segmentKey": SEED_SEGMENT_KEY,
    "acrossTrackIncidenceAngle": 25.609364414413804,
}


def attempts_object(*segments: dict[str, Any], mission_key: str = "mission") -> dict[str, Any]:
    """§3.2: ``progCapacities`` as an OBJECT (the example's quirk)."""
    mission: Any = ["PLEIADES"] if mission_key == "missions" else "PLEIADES"
    return {
        "progCapacities": {
            mission_key: mission,
            "progTypes": [
                {"name": "ONEDAY", "mission": "PLEIADES", "available": True, "segments": list(segments)}
            ],
        }
    }


def attempts_array(*segments: dict[str, Any]) -> dict[str, Any]:
    """The schema's form: ``progCapacities`` as an array."""
    body = attempts_object(*segments)
    return {"progCapacities": [body["progCapacities"]]}


def later_segment(days: int) -> dict[str, Any]:
    """The seed segment moved ``days`` later (another attempt of the same answer)."""
    seg = copy.deepcopy(SEED_SEGMENT)
    seg["id"] = f"PHR{days + 1}"
    seg["acquisitionStartDate"] = f"2021-06-{days:02d}T11:10:44.099Z"
    seg["acquisitionEndDate"] = f"2021-06-{days:02d}T11:10:45.552Z"
    seg["orderDeadline"] = f"2021-06-{days:02d}T02:55:00.099Z"
    seg["segmentKey"] = f"{days:0128x}::[]"
    return seg


# §3.3 price and order answers.
PRICE = {
    "contractId": "CisContractId",
    "currency": "EUR",
    "discountPercentage": 0,
    "discountValue": 0,
    "productTypes": [
        {
            "amount": 7392,
            "areaKm2": 132,
            "discountPercentage": 0,
            "discountValue": 0,
            "price": 7392,
            "productTypeId": "PleiadesTaskingOneDay",
            "items": [{"datastripIds": []}],
            "voucherCode": None,
        }
    ],
    "totalAmount": 7392,
}
ORDER_LEGACY = {
    "salesOrderId": "SAL21416909",
    "currency": "EUR",
    "discountPercentage": 0,
    "discountValue": 0,
    "totalAmount": 7600,
}
ORDER_NEO = {
    "quotationId": "QUO21000243",
    "currency": "EUR",
    "discountPercentage": 0,
    "discountValue": 0,
    "totalAmount": 7600,
}

# §3.4 verbatim taskings list and segments answers.
TASKINGS_EXAMPLE: dict[str, Any] = {
    "taskings": [
        {
            "sal": "SALXXXXXX",
            "so": "SOXXXXX",
            "icr": {
                "id": "ICR_FC_XXXXX",
                "aoi": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [122.68, -24.49],
                            [122.83, -24.49],
                            [122.83, -24.33],
                            [122.68, -24.33],
                            [122.68, -24.49],
                        ]
                    ],
                },
                "progTypeName": "OneDay",
                "status": "Completed",
                "nbProposedSegments": 0,
                "nbTotalSegments": 0,
                "period": {"startDate": "2021-03-03T01:54:44Z", "endDate": "2021-03-03T02:24:47Z"},
                "seriesInformation": None,
                "customerRef": "customer ref",
                "taskingProgress": {"orderedArea": 275718686.400068, "validatedArea": 0},
                "attempts": "2021-03-03T02:09:44.999Z 2021-03-03T02:09:47.001Z",
            },
        }
    ]
}

SEGMENTS_EXAMPLE: dict[str, Any] = {
    "segments": [
        {
            "id": "AS_FC_XXXX_1_2",
            "status": "Proposed",
            "asDetail1": {
                "catalogId": "DS_PHR1B_XXXXXX",
                "footprint": {
                    "type": "Polygon",
                    "coordinates": [
                        [[1.43, 43.56], [1.46, 43.56], [1.46, 43.6], [1.43, 43.6], [1.43, 43.56]]
                    ],
                },
                "incidenceAngle": 15.1072,
                "clearSkyRate": 88.8973,
                "acquisitionDate": "2021-04-18T10:53:38Z",
            },
        }
    ]
}


def tasking(
    n: int,
    *,
    status: str = "In Progress",
    proposed: int = 0,
    total: int = 0,
    validated_area: float = 0.0,
    ref: str | None = None,
) -> dict[str, Any]:
    """A taskings list item shaped like the verbatim example."""
    item: dict[str, Any] = copy.deepcopy(TASKINGS_EXAMPLE["taskings"][0])
    item["sal"], item["so"] = f"SAL{21400000 + n}", f"SO{n:06d}"
    icr = item["icr"]
    icr.update(
        id=f"ICR_FC_{n:06d}",
        status=status,
        nbProposedSegments=proposed,
        nbTotalSegments=total,
        customerRef=ref or f"ref-{n}",
        progTypeName="OnePlan",
    )
    icr["taskingProgress"] = {"orderedArea": 100_000_000.0, "validatedArea": validated_area}
    return item


def segment(seg_id: str, status: str, clear_sky: float) -> dict[str, Any]:
    seg: dict[str, Any] = copy.deepcopy(SEGMENTS_EXAMPLE["segments"][0])
    seg.update(id=seg_id, status=status)
    seg["asDetail1"]["clearSkyRate"] = clear_sky
    return seg


# §7 item 4: a PNEO order line (orders/search feature).
def order_line(
    quotation_id: str,
    *,
    status: str = "IN_PROGRESS",
    quotation_status: str = "ACCEPTED",
    ref: str = "my-ref",
    proposed: int = 0,
    total: int = 0,
    pct: float = 0.0,
    amount: float | None = 12345.0,
    order_item_id: str | None = "WOI_000007805_1",
    sales_order_id: str | None = "SAL22000001",
) -> dict[str, Any]:
    return {
        "contractId": "CTR21000411",
        "customerReference": ref,
        "quotationId": quotation_id,
        "salesOrderId": sales_order_id,
        "productType": "PleiadesNeoTaskingOnePlan",
        "licence": "standard",
        "mission": "pleiadesneo",
        "source": "tasking",
        "target": "oneplan",
        "status": status,
        "quotationStatus": quotation_status,
        "orderItemId": order_item_id,
        "orderLineId": "OL_1",
        "quotationVersion": 1,
        "orderLineAmount": amount,
        "initialOrderLineAmount": amount,
        "currency": "EUR",
        "priceCalculationArea": 100,
        "orderMinimumApplied": True,
        "requestedArea": 42.1,
        "producedArea": 0,
        "producedAreaPct": 0,
        "quotationCreationDate": "2022-05-02T09:00:00.000Z",
        "quotationEndOfValidityDate": "2022-05-09T09:00:00.000Z",
        "cancelationDeadlineDate": "2022-05-10T00:00:00.000Z",
        "lastStatusChangeDate": "2022-05-02T09:01:00.000Z",
        "tasking": {
            "holdBack": 0,
            "maxIncidenceAngle": 30,
            "acquisitionMode": "MONOSCOPIC",
            "cloudCoverageThresholdForProposition": 20,
            "maxCloudCoverage": 20,
            "period": [{"startDate": "2022-05-10T00:00:00.000Z", "endDate": "2022-07-10T00:00:00.000Z"}],
            "taskingRequest": [{"taskingRequestId": "TWOI_000007805_1_N"}],
            "validatedArea": 0,
            "validatedAreaPct": pct,
            "receivingStationType": "vrs",
            "nbProposedCoverageItems": proposed,
            "totalCoverageItems": total,
        },
    }


def coverage_item(item_id: str, status: str, clear_sky: float) -> dict[str, Any]:
    """§7 item 5: a PNEO coverage item."""
    return {
        "contractId": "CTR21000411",
        "coverageItemId": item_id,
        "orderItemId": "WOI_000007805_1",
        "status": status,
        "clearSkyRate": clear_sky,
        "catalogPlatformId": "MMCAT",
        "archiveId": "ACQ_PNEO4_0001",
        "satellite": "PNEO4",
        "mission": "pleiadesneo",
        "alongTrackIncidenceAngle": 1.2,
        "orthoTrackIncidenceAngle": 3.4,
        "orientation": 180,
        "incidenceAngle": 12.5,
        "sunAzimuth": 150,
        "sunElevation": 40,
        "bh": None,
        "customerId": "CUS1",
        "quotationId": "QUO22054973",
        "salesOrderId": "SAL22000001",
        "footprint": {
            "type": "Polygon",
            "coordinates": [[[1.43, 43.56], [1.46, 43.56], [1.46, 43.6], [1.43, 43.6], [1.43, 43.56]]],
        },
        "acquisitionDate": "2022-05-20T10:53:38.000Z",
    }


def search_page(features: list[dict[str, Any]], start: int, size: int, total: int) -> dict[str, Any]:
    return {
        "paging": {"itemsPerPage": size, "startIndex": start, "pagingMode": "item", "totalResults": total},
        "features": features,
    }


# §5 error bodies.
API_ERROR = {
    "correlationId": "c0ffee00-0000-4000-8000-000000000001",
    "hint": "Check the request",
    "internalCode": "ORD-4001",
    "message": "Invalid field 'aoi'",
    "timestamp": 1650000000000,
}
E2203_WORKSPACE = {
    "errorCode": "E2203",
    "message": "Unable to access workspace 'xxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx'",
}
E2203_CONTRACT = {"errorCode": "E2203", "message": "CIS contract 'contract_name' not found."}
NO_SENSOR = {"errors": [{"code": "ERR_NO_SENSOR_AVAILABLE", "locator": "UNKNOWN"}]}
UNEXPECTED = {"code": "UNEXPECTED_SERVER_ERROR"}
TOKEN_EXPIRED = {"message": "Authentication failed (cause: Token expired)"}


# ----------------------------------------------------------------------------- builders

API_KEY = "oa-api-key-DO-NOT-LOG-1234"  # a test credential, asserted never to leak
BASE = "https://order.api.oneatlas.test"
AUTH_URL = "https://authenticate.oneatlas.test" + AUTH_PATH
LEGACY_CONTRACT = "CTR21000411"
NEO_CONTRACT = "CTR21000999"
WORKSPACE = "0a1b2c3d-0000-4000-8000-000000000001"

# The seed's Toulouse AOI (about 12 km x 12 km, UTM zone 31N).
TOULOUSE = {
    "type": "Polygon",
    "coordinates": [
        [
            [1.3763809204101562, 43.545313140623726],
            [1.5095901489257812, 43.545313140623726],
            [1.5095901489257812, 43.656198305413156],
            [1.3763809204101562, 43.656198305413156],
            [1.3763809204101562, 43.545313140623726],
        ]
    ],
}


def settings(**overrides: Any) -> OneAtlasSettings:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "contract_id": LEGACY_CONTRACT,
        "neo_contract_id": NEO_CONTRACT,
        "workspace_id": WORKSPACE,
        "auth_url": AUTH_URL,
        "base_url": BASE,
        "notification_emails": ["ops@example.org"],
        "rate_limit_per_second": 10_000,
        "end_users": [{"endUserName": "Jack", "country": "FR"}],
        "primary_market": "AGRI",
    }
    values.update(overrides)
    return OneAtlasSettings.model_validate(values)


def http_settings(**overrides: Any) -> HttpClientSettings:
    values: dict[str, Any] = {
        "max_retries": 3,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "timeout_seconds": 5,
    }
    values.update(overrides)
    return HttpClientSettings.model_validate(values)


def request(
    mission: str = "PLEIADES",
    programming_type: str = "ONEPLAN",
    *,
    start: str = "2021-06-18T09:04:16.284Z",
    end: str = "2021-09-18T23:59:59.999Z",
    aoi: dict[str, Any] | None = None,
    **fields: Any,
) -> OrderRequest:
    body: dict[str, Any] = {
        "requestId": fields.pop("requestId", "req-0001"),
        "provider": "oneatlas",
        "product": {"mission": mission, "programmingType": programming_type},
        "aoi": aoi or TOULOUSE,
        "window": {"start": start, "end": end},
    }
    body.update(fields)
    return OrderRequest.model_validate(body)
