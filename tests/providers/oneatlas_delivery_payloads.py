"""OneAtlas delivery payloads shaped like the recorded answers (opensearch, /api/v1/me, contracts).

``PNEO_ITEM`` is the recorded Pléiades Neo delivery (a customer workspace's opensearch answer,
trimmed as published in the provider notes): ``_links.download`` as an object, ``resourceId`` the
zip name that carries the ``ACQ_…`` acquisition id. ``PNEO_ITEM_ARRAY`` is the later shape, where
``download`` became an array that also holds an ftpes link and a bundle's ``imagesMetadata`` is an
array. ``LEGACY_ITEM`` is a Pléiades product with ``sourceIdentifier`` ``DS_…``.
"""

from __future__ import annotations

import copy
from typing import Any

ACCESS = "https://access.foundation.api.oneatlas.airbus.com/api/v1/items"
SEARCH = "https://search.foundation.api.oneatlas.airbus.com"
SEARCH_URL = "https://search.oneatlas.test"
DATA_URL = "https://data.oneatlas.test"
LEGACY_WORKSPACE = "9e95d539-3dcd-4d26-985c-c4b573e5d21e"
NEO_WORKSPACE_ID = "bbdaf4c9-37da-4480-9c52-c75cbfa17a22"
NEO_WORKSPACE_NAME = "mareclever"

PNEO_ID = "d6c4cafa-4577-4241-a130-ab40c927f9c7"
PNEO_ITEM: dict[str, Any] = {
    "type": "Feature",
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [
                [-81.8389, 24.6054],
                [-81.8384, 24.5249],
                [-81.7639, 24.5253],
                [-81.7644, 24.6058],
                [-81.8389, 24.6054],
            ]
        ],
    },
    "properties": {
        "id": PNEO_ID,
        "acquisitionDate": "2021-12-29T16:14:49.421Z",
        "constellation": "PNEO",
        "platform": "PNEO4",
        "processingLevel": "ORTHO",
        "productType": "mono",
        "format": "SAFIR",
        "cloudCover": 0,
        "incidenceAngle": 8.09,
        "resolution": 0.3,
        "productionStatus": "IN_CLOUD",
        "customerReference": "EXT_Key_West_QC",
        "internalReference": "SAL22005365",
        "internalLine": "1",
        "commercialReference": "WO_000007286_1",
        "contractId": "CTR21000421",
        "correlationId": "PWOI_000007286_1_1_I_1",
        "acquisitionIdentifier": None,
        "sourceIdentifier": None,
        "publicationDate": "2022-01-24T14:13:43.343Z",
        "lastUpdateDate": "2022-01-24T14:13:43.343Z",
        "expirationDate": "2023-01-24T14:13:43.343Z",
        "workspaceId": LEGACY_WORKSPACE,
        "workspaceName": "jaylegend",
    },
    "_links": {
        "download": {
            "href": f"{ACCESS}/{PNEO_ID}/download",
            "name": "Download",
            "type": "HTTP",
            "resourceId": "WO_000007286_1_SAL22005365-1_ACQ_PNEO4_00936001144780.zip",
        },
        "quicklook": {"href": f"{ACCESS}/{PNEO_ID}/quicklook", "name": "QuickLook", "type": "HTTP"},
        "imagesMetadata": {
            "href": f"{ACCESS}/{PNEO_ID}/images/27409b97-5bc5-47f4-ac0f-b963cd27133a/metadata",
            "name": "pms",
            "type": "application/geo+json",
            "resourceId": "27409b97-5bc5-47f4-ac0f-b963cd27133a",
        },
        "self": {"href": f"{SEARCH}/api/v1/opensearch?id={PNEO_ID}", "method": "GET", "name": "self"},
    },
    "rights": {"browse": {}, "download": {}, "wms": {}, "wmts": {}},
}


def pneo_item_array(item_id: str = "5f0e4a4e-1111-4222-8333-444455556666", **props: Any) -> dict[str, Any]:
    """A Pléiades Neo bundle in the later shape: ``download`` and ``imagesMetadata`` arrays."""
    item = copy.deepcopy(PNEO_ITEM)
    item["properties"].update(
        {
            "id": item_id,
            "productType": "bundle",
            "commercialReference": "WO_000007300_1",
            "internalReference": "SAL22005400",
            "customerReference": "tsk-neo-0001",
            **props,
        }
    )
    zip_name = "WO_000007300_1_SAL22005400-1_ACQ_PNEO3_00937001200111.zip"
    item["_links"] = {
        "download": [
            {
                "href": f"ftpes://ftp.oneatlas.test/{zip_name}",
                "name": "Download",
                "type": "FTPES",
                "resourceId": zip_name,
            },
            {
                "href": f"{ACCESS}/{item_id}/download",
                "name": "Download",
                "type": "HTTP",
                "resourceId": zip_name,
            },
        ],
        "quicklook": {"href": f"{ACCESS}/{item_id}/quicklook", "name": "QuickLook", "type": "HTTP"},
        "imagesMetadata": [
            {
                "href": f"{ACCESS}/{item_id}/images/aaa/metadata",
                "name": "panchromatic",
                "type": "application/geo+json",
                "resourceId": "aaa",
            },
            {
                "href": f"{ACCESS}/{item_id}/images/bbb/metadata",
                "name": "multispectral",
                "type": "application/geo+json",
                "resourceId": "bbb",
            },
        ],
        "imagesWms": [
            {"href": f"{ACCESS}/{item_id}/images/aaa/wms", "type": "WMS"},
            {"href": f"{ACCESS}/{item_id}/images/bbb/wms", "type": "WMS"},
        ],
        "self": {"href": f"{SEARCH}/api/v1/opensearch?id={item_id}", "method": "GET", "name": "self"},
    }
    return item


def legacy_item(
    item_id: str = "0c4b1f3e-2222-4333-8444-555566667777",
    sales_order: str = "SAL21400001",
    updated: str = "2026-03-02T10:00:00.000Z",
    reference: str = "ref-legacy-1",
) -> dict[str, Any]:
    """A Pléiades product: ``download`` an object, ``sourceIdentifier`` the ``DS_…`` datastrip."""
    ds = "DS_PHR1B_202110061046538_FR1_PX_W106N39_1124_00592"
    return {
        "type": "Feature",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[1.38, 43.55], [1.5, 43.55], [1.5, 43.65], [1.38, 43.65], [1.38, 43.55]]],
        },
        "properties": {
            "id": item_id,
            "acquisitionDate": "2026-03-01T10:46:53.800Z",
            "constellation": "PHR",
            "platform": "PHR1B",
            "processingLevel": "ORTHO",
            "productType": "bundle",
            "format": "application/octet-stream",
            "cloudCover": 3.5,
            "incidenceAngle": 12.4,
            "resolution": 0.5,
            "productionStatus": "IN_CLOUD",
            "customerReference": reference,
            "internalReference": sales_order,
            "internalLine": "1",
            "commercialReference": "SO000001",
            "contractId": "CTR21000411",
            "acquisitionIdentifier": ds,
            "sourceIdentifier": ds,
            "parentIdentifier": ds,
            "publicationDate": updated,
            "lastUpdateDate": updated,
            "expirationDate": "2027-03-02T10:00:00.000Z",
            "workspaceId": LEGACY_WORKSPACE,
            "workspaceName": "legacy-ws",
        },
        "_links": {
            "download": {
                "href": f"{ACCESS}/{item_id}/download",
                "name": "Download",
                "type": "HTTP",
                "resourceId": "PHR1B_acq20211006_del7c1e7711.zip",
            },
            "quicklook": {"href": f"{ACCESS}/{item_id}/quicklook", "name": "QuickLook", "type": "HTTP"},
            "self": {"href": f"{SEARCH}/api/v1/opensearch?id={item_id}", "method": "GET", "name": "self"},
        },
        "rights": {"browse": {}, "download": {}},
    }


def search_answer(features: list[dict[str, Any]], start: int, size: int, total: int) -> dict[str, Any]:
    """The opensearch envelope (``startIndex`` 0-based)."""
    return {
        "error": False,
        "itemsPerPage": size,
        "startIndex": start,
        "totalResults": total,
        "type": "FeatureCollection",
        "features": features,
    }


ME = {
    "id": "f8b5a2a1-0000-4000-8000-000000000009",
    "username": "someone@example.org",
    "email": "someone@example.org",
    "roles": ["customer"],
    "contract": {
        "id": "a1b2c3d4-0000-4000-8000-000000000010",
        "name": "Pay per order",
        "workspaceId": LEGACY_WORKSPACE,
        "workspaceName": "legacy-ws",
    },
}


def contracts(neo_contract: str, workspace: str) -> dict[str, Any]:
    """``GET /api/v1/contracts`` with the neo contract's ``delivery[]`` naming ``workspace``."""
    return {
        "contracts": [
            {
                "contractId": "CTR21000411",
                "customerId": "CUS-1",
                "name": "Legacy",
                "tradeAgreementUrl": "",
                "creditRemaining": "1000",
                "currency": "EUR",
                "language": "en",
                "contractType": "PPO",
                "delivery": [],
                "backendSource": "legacy",
            },
            {
                "contractId": neo_contract,
                "customerId": "CUS-1",
                "name": "Neo",
                "tradeAgreementUrl": "",
                "creditRemaining": "1000",
                "currency": "EUR",
                "language": "en",
                "contractType": "PPO",
                "delivery": [{"deliveryPlatformId": "PublicMOC", "deliveryWorkspace": workspace}],
                "backendSource": "neo",
            },
        ]
    }
