"""UP42 payloads shaped like the reference (``up42-api.md``), and request/settings builders.

The Panama AOI, window and parameter choices come from the seed's Pléiades example; the page
envelope, study, quotation, order, coverage and error bodies follow the recorded SDK fixtures.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import SecretStr

from worker.config import HttpClientSettings, Up42Settings
from worker.events.models import OrderRequest
from worker.simulators.up42_schemas import PLEIADES_TASKING_PRODUCT_ID

Json = dict[str, Any]

BASE = "https://api.up42.test"
AUTH = "https://auth.up42.test/realms/public/protocol/openid-connect/token"
USERINFO = "https://auth.up42.test/realms/public/protocol/openid-connect/userinfo"
WORKSPACE = "313ba781-8f3c-4b0e-9c7e-2a1d5e6f7a8b"
ORDER_ID = "da2310a2-c7fb-42ed-bead-fb49ad862c67"
STUDY_ID = "e6285c5b-0b1f-4e87-be4b-782705f5ae2d"
OPTION_A = "ed3628eb-4f6a-4a8d-9a4e-0c8f2d1b3a55"
OPTION_B = "377aabca-1b2c-4d3e-8f4a-5b6c7d8e9f01"
QUOTATION_ID = "6f83adac-752c-4546-8c35-639a3b20d2b7"
USERNAME = "pilot@example.org"
PASSWORD = "correct horse battery staple"

PANAMA_RING = [
    [-79.64181869909564, 9.072695881506306],
    [-79.43872941845207, 9.072695881506306],
    [-79.43878601941417, 8.870349117277087],
    [-79.64176209813355, 8.870349117277087],
    [-79.64181869909564, 9.072695881506306],
]


def settings(**overrides: Any) -> Up42Settings:
    values: Json = {
        "username": USERNAME,
        "password": SecretStr(PASSWORD),
        "auth_url": AUTH,
        "base_url": BASE,
        "rate_limit_per_second": 10_000.0,
    }
    values.update(overrides)
    return Up42Settings(**values)


def http_settings(**overrides: Any) -> HttpClientSettings:
    values: Json = {"max_retries": 3, "backoff_base_seconds": 0.0, "timeout_seconds": 5.0}
    values.update(overrides)
    return HttpClientSettings(**values)


def order_request(**overrides: Any) -> OrderRequest:
    """The seed's Pléiades tasking request over Panama, as a contract ``OrderRequest``."""
    raw: Json = {
        "requestId": "req-panama-001",
        "provider": "up42",
        "product": {"dataProductId": PLEIADES_TASKING_PRODUCT_ID},
        "aoi": {"type": "Polygon", "coordinates": [PANAMA_RING]},
        "window": {"start": "2026-08-01T00:00:00Z", "end": "2026-10-01T00:00:00Z"},
        "constraints": {"maxCloudCover": 10, "maxIncidenceAngle": 10, "acquisitionMode": "MONO"},
        "processing": {
            "processingLevel": "ortho",
            "spectralProcessing": "bundle",
            "radiometricProcessing": "reflectance",
            "pixelCoding": "12bits",
            "imageFormat": "geotiff",
            "projection": "4326",
        },
        "comments": "Capture high resolution images over my AOI",
    }
    for key, value in overrides.items():
        if value is None:
            raw.pop(key, None)
        elif isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return OrderRequest.model_validate(raw)


TOKEN = {
    "access_token": "eyJ.sim.token-1",
    "expires_in": 300,
    "refresh_expires_in": 1800,
    "refresh_token": "refresh-unused",
    "token_type": "Bearer",
    "not-before-policy": 0,
    "session_state": "3bf00b63-0000-4000-8000-000000000000",
    "scope": "ACCOUNT_ADMIN USER",
}


def token(n: int) -> Json:
    return {**TOKEN, "access_token": f"eyJ.sim.token-{n}"}


def page(content: list[Json], *, number: int = 0, size: int = 10, total: int | None = None) -> Json:
    """The recorded Spring page envelope around ``content``."""
    total_elements = total if total is not None else len(content)
    total_pages = -(-total_elements // size) if size else 0
    sort = {"sorted": True, "unsorted": False, "empty": False}
    return {
        "content": content,
        "pageable": {
            "sort": sort,
            "pageNumber": number,
            "pageSize": size,
            "offset": number * size,
            "paged": True,
            "unpaged": False,
        },
        "totalPages": total_pages,
        "totalElements": total_elements,
        "last": number >= total_pages - 1,
        "first": number == 0,
        "numberOfElements": len(content),
        "size": size,
        "number": number,
        "sort": sort,
        "empty": not content,
    }


# The recorded envelope (3 pages, 23 elements) exactly as the reference quotes it.
RECORDED_PAGE_ENVELOPE: Json = {
    "content": [],
    "pageable": {
        "sort": {"sorted": True, "unsorted": False, "empty": False},
        "pageNumber": 0,
        "pageSize": 10,
        "offset": 0,
        "paged": True,
        "unpaged": False,
    },
    "totalPages": 3,
    "totalElements": 23,
    "last": False,
    "first": True,
    "numberOfElements": 10,
    "size": 10,
    "number": 0,
    "sort": {"sorted": True, "unsorted": False, "empty": False},
    "empty": False,
}


def order(
    order_id: str = ORDER_ID,
    status: str = "CREATED",
    sub_status: str | None = "FEASIBILITY_WAITING_UPLOAD",
    **extra: Any,
) -> Json:
    body: Json = {
        "id": order_id,
        "displayName": "req-panama-001",
        "workspaceId": WORKSPACE,
        "accountId": "3c86279b-0000-4000-8000-000000000001",
        "type": "TASKING",
        "status": status,
        "dataProductId": PLEIADES_TASKING_PRODUCT_ID,
        "createdAt": "2023-03-17T08:53:18.272834Z",
        "updatedAt": "2023-03-17T09:42:31.213565Z",
        "createdBy": {"id": "e49786fb-0000-4000-8000-000000000002", "type": "API_KEY"},
        "updatedBy": {"id": "system", "type": "INTERNAL"},
        "tags": ["req-panama-001"],
        "orderDetails": {
            "acquisitionStart": "2026-08-01T00:00:00.000Z",
            "acquisitionEnd": "2026-10-01T00:00:00.000Z",
            "geometry": {"type": "Polygon", "coordinates": [PANAMA_RING]},
            "subStatus": sub_status,
            "acquisitionMode": "mono",
            "cloudCoverage": "10",
            "incidenceAngle": "10",
        },
    }
    body.update(extra)
    return body


_OPTION = {
    "createdAt": "2023-05-09T13:21:26.736889Z",
    "updatedAt": "2023-05-09T13:21:26.736889Z",
    "studyId": STUDY_ID,
}

MANUAL_STUDY_OPEN: Json = {
    "id": STUDY_ID,
    "createdAt": "2023-05-09T13:21:26.736889Z",
    "updatedAt": "2023-05-09T13:21:26.736889Z",
    "accountId": "3c86279b-0000-4000-8000-000000000001",
    "workspaceId": WORKSPACE,
    "orderId": ORDER_ID,
    "type": "MANUAL",
    "options": [
        {**_OPTION, "id": OPTION_A, "description": "Feasibility option A"},
        {**_OPTION, "id": OPTION_B, "description": "Option 2: increase cloud cover percentage"},
    ],
    "decision": "NOT_DECIDED",
    "decisionById": None,
    "decisionByType": None,
    "decisionAt": None,
    "decisionOption": None,
}


def manual_study_decided(option_id: str = OPTION_B) -> Json:
    study = copy.deepcopy(MANUAL_STUDY_OPEN)
    chosen = next(o for o in study["options"] if o["id"] == option_id)
    study.update(
        decision="ACCEPTED",
        decisionById="80357ed6-0000-4000-8000-000000000003",
        decisionByType="USER",
        decisionAt="2023-05-09T13:29:18.885491Z",
        decisionOption=chosen,
        updatedAt="2023-05-09T13:29:18.896470Z",
    )
    return study


AUTO_STUDY: Json = {
    **MANUAL_STUDY_OPEN,
    "type": "AUTO",
    "options": [],
    "decision": "ACCEPTED",
    "decisionByType": None,
    "decisionOption": None,
    "decisionAt": "2023-05-09T13:21:27.000000Z",
}


def quotation(decision: str = "NOT_DECIDED", credits_price: int = 300) -> Json:
    decided = decision != "NOT_DECIDED"
    return {
        "id": QUOTATION_ID,
        "createdAt": "2023-05-01T17:05:41.749425Z",
        "updatedAt": "2023-05-01T17:06:04.115594Z",
        "accountId": "3c86279b-0000-4000-8000-000000000001",
        "workspaceId": WORKSPACE,
        "orderId": ORDER_ID,
        "creditsPrice": credits_price,
        "decision": decision,
        "decisionById": "80357ed6-0000-4000-8000-000000000003" if decided else None,
        "decisionByType": "USER" if decided else None,
        "decisionAt": "2023-05-01T17:06:04.115594Z" if decided else None,
    }


ESTIMATE_OK: Json = {
    "summary": {"totalCredits": 10, "totalSize": 50, "unit": "SQ_KM"},
    "results": [{"index": 0, "credits": 10, "size": 50, "unit": "SQ_KM"}],
    "errors": [],
}
ITEM_ERROR: Json = {
    "results": [],
    "errors": [{"index": 0, "message": "Failed", "details": "Invalid geometry"}],
}
CREATE_OK: Json = {"results": [{"index": 0, "id": ORDER_ID}], "errors": []}

COVERAGE: Json = {
    "covered": {
        "sqKmArea": 78.5,
        "percentage": 85.0,
        "geometry": {"type": "FeatureCollection", "features": []},
    },
    "remainder": {
        "sqKmArea": 13.8,
        "percentage": 15.0,
        "geometry": {"type": "FeatureCollection", "features": []},
    },
}


def stac_item(item_id: str, cloud: float, when: str = "2026-08-12T15:30:00.000Z") -> Json:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "geometry": {"type": "Polygon", "coordinates": [PANAMA_RING]},
        "properties": {
            "datetime": when,
            "eo:cloud_cover": cloud,
            "view:incidence_angle": 7.5,
            "up42-order:id": ORDER_ID,
            "up42-system:asset_id": f"asset-{item_id}",
        },
        "assets": {},
        "links": [],
    }


# The error bodies of reference §5.2.
TASKING_404: Json = {
    "status": 404,
    "title": f"Resource (FeasibilityStudy) not found with Id='{STUDY_ID}'.",
    "detail": {},
}
QUOTATION_405: Json = {"status": 405, "title": "Resource (Quotation) is write-protected.", "detail": {}}
STUDY_405: Json = {"status": 405, "title": "Resource (FeasibilityStudy) is write-protected.", "detail": {}}
BASIC_400: Json = {
    "code": 400,
    "message": "Order parameters errors",
    "details": "params.cloudCoverage must be an integer",
}
LEGACY_422: Json = {
    "data": None,
    "error": {"code": "VALIDATION_ERROR", "message": "Invalid search", "details": None},
}
LEGACY_EXPIRED: Json = {
    "error": {
        "code": "UNAUTHORIZED",
        "message": "ACCESS_TOKEN_EXPIRED: JWT expired at 2026-01-01T00:00:00Z",
        "details": None,
    },
    "data": None,
}
KEYCLOAK_401: Json = {"error": "invalid_grant", "error_description": "Invalid user credentials"}


# --------------------------------------------------------------------------- delivery (storage)
# Shaped like the reference's recorded and documented responses (delivery.md §2.4-2.8).

ORDER_2 = "5d3c1b0a-9e8f-47d6-b5a4-c3d2e1f0a9b8"
CNAM_ITEM = "363e7831-48ff-4311-83c1-a37d3ef54b66"
CNAM_COLLECTION = "7947d269-117a-4954-8cab-adf6be623ca9"
CNAM_ASSET = "22d0b8e9-b649-4971-8adc-1a5eac1fa6f3"
OLD_ITEM = "a1b2c3d4-0000-4000-8000-00000000a001"
OLD_COLLECTION = "a1b2c3d4-0000-4000-8000-00000000c001"
OLD_ASSET = "a1b2c3d4-0000-4000-8000-00000000b001"
API = "https://api.up42.com"


def storage_asset(
    asset_id: str, created: str, order_id: str | None = ORDER_ID, status: str = "SUCCESSFUL"
) -> Json:
    """One ``GET /v2/assets`` entry (Spring page content)."""
    entry: Json = {
        "id": asset_id,
        "workspaceId": WORKSPACE,
        "createdAt": created,
        "updatedAt": created,
        "name": f"{asset_id[:8]}_oneatlas.zip",
        "size": 8123456,
        "geospatialMetadataExtractionStatus": status,
        "tags": [],
    }
    if order_id is not None:
        entry["orderId"] = order_id
    return entry


def assets_page(entries: list[Json], page: int = 0, total_pages: int = 1) -> Json:
    return {"content": entries, "totalPages": total_pages, "totalElements": len(entries), "number": page}


def cnam_item(order_key: str = "up42-order:id") -> Json:
    """The CNAM item of delivery.md §2.8 (per-file assets with random prefixes)."""
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": CNAM_ITEM,
        "collection": CNAM_COLLECTION,
        "bbox": [13.3510, 52.5236, 13.3573, 52.5268],
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[13.3552, 52.5268], [13.3573, 52.5244], [13.3510, 52.5244], [13.3552, 52.5268]]],
        },
        "properties": {
            "datetime": "2020-09-30T10:39:26.600000+00:00",
            "constellation": "PHR",
            "platform": "PHR-1A",
            "eo:cloud_cover": 0.0,
            "view:incidence_angle": 25.94,
            "gsd": 0.82,
            "proj:epsg": 32633,
            "title": "DS_PHR1A_202009301038498_FR1_PX_E013N52_0513_00365_R1C1",
            order_key: ORDER_ID,
            "up42-system:source": "TASKING",
            "up42-system:asset_id": CNAM_ASSET,
            "up42-product:collection_name": "phr",
            "up42-product:modality": "multispectral",
            "up42-system:metadata_version": "0.0.4",
        },
        "assets": {
            "mgag5ui3_img_phr1a_ms_202009301038498_sen.tiff": {
                "href": f"{API}/v2/assets/e4a15000-890b-445c-82bb-e4364baac40b",
                "title": "Multispectral data",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data", "multispectral"],
                "gsd": 0.73,
            },
            "mgag5ui3_stac_metadata.json": {
                "href": f"{API}/v2/assets/0c5c5e4e-5b7d-4b4e-9d0e-2f1e3d4c5b6a",
                "title": "STAC metadata",
                "type": "application/json",
                "roles": ["metadata"],
            },
            "signed-by-mistake.tiff": {
                "href": "https://storage.googleapis.com/user-storage-interstellar-prod/assets/x.tiff"
                "?GoogleAccessId=a&Expires=1697201515&Signature=abc",
                "roles": ["data"],
            },
        },
        "links": [
            {
                "rel": "self",
                "href": f"{API}/v2/assets/stac/collections/{CNAM_COLLECTION}/items/{CNAM_ITEM}",
            },
            {"rel": "collection", "href": f"{API}/v2/assets/stac/collections/{CNAM_COLLECTION}"},
        ],
    }


def old_item() -> Json:
    """A pre-CNAM item: one ``data`` asset (delivery.md §2.5, the SDK fixture's shape)."""
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": OLD_ITEM,
        "collection": OLD_COLLECTION,
        "geometry": {"type": "Polygon", "coordinates": [PANAMA_RING]},
        "properties": {
            "datetime": "2023-03-01T10:00:00Z",
            "up42-order:id": ORDER_2,
            "up42-system:asset_id": OLD_ASSET,
        },
        "assets": {
            "data": {
                "href": f"{API}/v2/assets/{OLD_ASSET}",
                "title": "Data",
                "description": "Storage Data",
                "type": "application/zip",
                "roles": ["data"],
            }
        },
        "links": [],
    }


def cnam_collection() -> Json:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": CNAM_COLLECTION,
        "assets": {
            "mgag5ui3_DS_PHR1A_202009301038498_FR1_PX_E013N52_0513_00365.zip": {
                "href": f"{API}/v2/assets/{CNAM_ASSET}",
                "title": "Original Delivery",
                "type": "application/zip",
                "roles": ["data", "original"],
            }
        },
        "links": [],
    }
