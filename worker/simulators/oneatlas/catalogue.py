"""Contracts, product types, options, feasibility and attempts (the order.api catalogue)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from worker.simulators.common import iso
from worker.simulators.oneatlas.helpers import (
    aoi_size_error,
    as_dict,
    as_list,
    envelope,
    intersects_any,
    option_record,
    parse_aoi,
    parse_time,
    sensor_of,
    target_of,
    to_millis,
    to_wkt,
)
from worker.simulators.oneatlas.model import (
    ATTEMPT_PROG_TYPES,
    DAY,
    LEGACY_PROG_TYPES,
    NEO_PROG_TYPES,
    PREFIX,
    SATELLITE,
    SPECTRAL,
    code_error,
    errors_error,
)
from worker.simulators.oneatlas.state import SimulatorState
from worker.wkt import centroid, utm_epsg


class CatalogueApi(SimulatorState):
    """Contracts, product types, options, feasibility and attempts (the order.api catalogue)."""

    # ================================================================== catalogue

    def _contracts(self, request: Request, raw: bytes) -> Response:
        return JSONResponse(
            {
                "contracts": [
                    {
                        "contractId": c.contract_id,
                        "customerId": "CUS-SIM",
                        "name": c.name or c.contract_id,
                        "tradeAgreementUrl": "",
                        "creditRemaining": "1000000",
                        "currency": c.currency,
                        "language": "en",
                        "contractType": "PPO",
                        "delivery": [
                            {
                                "deliveryPlatformId": "PublicMOC",
                                "deliveryWorkspace": (
                                    c.workspace_name if c.workspace_listed_by_name else c.workspace
                                ),
                            }
                        ],
                        "backendSource": c.backend,
                    }
                    for c in self.contracts.values()
                ]
            }
        )

    def _product_types(self, request: Request, raw: bytes) -> Response:
        contract = self._contract(request.path_params["cid"])
        return JSONResponse(
            {
                "productTypes": [
                    {
                        "productTypeId": p,
                        "technicalProduct": {
                            "id": p,
                            "label": p,
                            "source": {"id": "tasking", "label": "Tasking"},
                            "sensor": {"id": sensor_of(p), "label": sensor_of(p)},
                            "target": {"id": target_of(p), "label": target_of(p)},
                            "licences": [],
                        },
                        "minimumOrderAreaApplied": 500 if p.startswith("Spot") else 100,
                        "descriptionUrl": "",
                    }
                    for p in self.product_types(contract.backend)
                ]
            }
        )

    def _options(self, request: Request, raw: bytes) -> Response:
        contract = self._contract(request.path_params["cid"])
        ptype = request.path_params["ptype"]
        if ptype not in self.product_types(contract.backend):
            raise code_error(404, "E2204", f"Product type '{ptype}' not found.")
        polygons = as_list(self._json(raw).get("aoi"))
        aoi_id = as_dict(polygons[0]).get("polygonId", 1) if polygons else 1
        geometry = as_dict(polygons[0]).get("geometry") if polygons else None
        projection = utm_epsg(geometry) if isinstance(geometry, dict) else "4326"
        default_spectral = "full_bundle" if contract.backend == "neo" else "bundle"
        return JSONResponse(
            {
                "availableOptions": [
                    option_record("processing_level", "primary", ["ortho", "projected", "primary"]),
                    option_record(
                        "spectral_processing", default_spectral, sorted(SPECTRAL[contract.backend])
                    ),
                    option_record("radiometric_processing", "basic", ["basic", "reflectance", "display"]),
                    option_record("pixel_coding", "12bits", ["8bits", "12bits"]),
                    option_record(
                        "image_format",
                        "dimap_jpeg2000_regular",
                        ["dimap_jpeg2000_regular", "dimap_jpeg2000_optimized", "dimap_geotiff"],
                    ),
                    option_record(
                        f"projection_{aoi_id}",
                        projection,
                        [projection, "4326", "3857"],
                        mandatory="constraint",
                        condition="processing_level:(ortho|projected)",
                    ),
                    option_record(
                        f"dem_{aoi_id}",
                        "best_available",
                        ["best_available", "SRTMV4"],
                        mandatory="constraint",
                        condition="processing_level:(ortho)",
                    ),
                    option_record("priority", "standard", ["standard", "rush"]),
                    option_record("licence", "standard", ["standard", "background_layer"]),
                    option_record("delivery_method", "on_the_flow", ["on_the_flow", "at_the_end"]),
                ]
            }
        )

    # ================================================================== feasibility / attempts

    def _search_request(self, body: dict[str, Any], endpoint: str) -> dict[str, Any]:
        """Validate a feasibility/attempts body; returns the parsed essentials."""
        for name in ("progTypeNames", "contractId", "acquisitionDate", "optical", "aoi"):
            if body.get(name) in (None, "", []):
                raise errors_error(400, "ERR_MISSING_PARAMETER", name, f"{name} is required")
        missions = body.get("missions")
        mission = body.get("mission") or (missions[0] if isinstance(missions, list) and missions else None)
        if mission not in PREFIX:
            raise errors_error(400, "ERR_INVALID_PARAMETER", "mission", f"unknown mission {mission}")
        contract = self._contract(body["contractId"])
        backend = "neo" if mission == "PLEIADESNEO" else "legacy"
        if contract.backend != backend:
            raise errors_error(
                400,
                "ERR_OTHER",
                "contractId",
                f"{mission} cannot be ordered on a {contract.backend} contract",
            )
        names = body["progTypeNames"] if isinstance(body["progTypeNames"], list) else [body["progTypeNames"]]
        allowed = (
            ATTEMPT_PROG_TYPES[backend]
            if endpoint == "attempts"
            else (NEO_PROG_TYPES if backend == "neo" else LEGACY_PROG_TYPES)
        )
        for name in names:
            if name not in allowed:
                raise errors_error(
                    400,
                    "ERR_INVALID_PARAMETER",
                    "progTypeNames",
                    f"{name} is not one of {', '.join(allowed)}",
                )
        dates, optical = as_dict(body["acquisitionDate"]), as_dict(body["optical"])
        start = parse_time(dates.get("startDate"), "acquisitionDate.startDate")
        end = (
            parse_time(dates["endDate"], "acquisitionDate.endDate")
            if dates.get("endDate")
            else start + timedelta(days=7)
        )
        aoi = parse_aoi(body["aoi"])
        return {
            "mission": mission,
            "backend": backend,
            "names": names,
            "start": start,
            "end": end,
            "aoi": aoi,
            "mode": str(optical.get("acquisitionMode") or "MONO"),
            "cloud": float(optical.get("maxCloudCover", 100)),
            "incidence": float(optical.get("maxIncidenceAngle", 90)),
            "contract": contract,
        }

    def _feasibility(self, request: Request, raw: bytes) -> Response:
        q = self._search_request(self._json(raw), "feasibility")
        blocked = intersects_any(q["aoi"], self.no_capacity_aois)
        prog_types = [self._feasibility_entry(q, name, blocked) for name in q["names"]]
        return JSONResponse({"progCapacities": [{"mission": q["mission"], "progTypes": prog_types}]})

    def _feasibility_entry(self, q: dict[str, Any], name: str, blocked: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name, "mission": q["mission"]}
        size_error = aoi_size_error(q["mission"], name, q["aoi"])
        if size_error is not None:
            return {**entry, "errors": [size_error], "available": False}
        if blocked:
            return {**entry, "available": False}
        days = (q["end"] - q["start"]).total_seconds() / DAY
        manual = (
            q["mode"] != "MONO"
            or q["cloud"] < 10
            or q["incidence"] < 20
            or (name == "ONEPLAN" and days < 30)
            or (name == "ONENOWWEATHER" and days < 3)
        )
        feasibility: dict[str, Any] = {
            "classification": "EASY" if name != "ONEPLAN" or days >= 60 else "CHALLENGING",
            "automation": "MANUAL" if manual else "AUTOMATIC",
        }
        if q["backend"] == "legacy":
            feasibility["automationName"] = "" if manual else "AutomaticTasking30"
            return {**entry, "feasibility": feasibility, "available": True}
        expires = iso(self._now() + timedelta(days=1))
        return {**entry, "feasibility": feasibility, "available": True, "expirationDate": expires}

    def _attempts(self, request: Request, raw: bytes) -> Response:
        q = self._search_request(self._json(raw), "attempts")
        if intersects_any(q["aoi"], self.no_attempt_aois):
            raise errors_error(500, "ERR_NO_SENSOR_AVAILABLE", "UNKNOWN")
        prog_types = []
        for name in q["names"]:
            size_error = aoi_size_error(q["mission"], name, q["aoi"])
            if size_error is not None:
                prog_types.append(
                    {
                        "name": name,
                        "mission": q["mission"],
                        "errors": [size_error],
                        "segments": [],
                        "available": False,
                    }
                )
                continue
            segments = [self._attempt_segment(q, name, k) for k in range(3)]
            prog_types.append(
                {"name": name, "mission": q["mission"], "available": True, "segments": segments}
            )
        # The example answers progCapacities as an object, not the array of the schema.
        return JSONResponse({"progCapacities": {"mission": q["mission"], "progTypes": prog_types}})

    def _attempt_segment(self, q: dict[str, Any], name: str, k: int) -> dict[str, Any]:
        start = to_millis(max(q["start"], self._now()))  # a past start is replaced by "now"
        acq_start = start + timedelta(hours=8 + 24 * k)
        acq_end = acq_start + timedelta(seconds=2.2)
        deadline = acq_start - timedelta(hours=6)
        wkt = to_wkt(envelope(q["aoi"]))
        lon, lat = centroid(q["aoi"])
        rng = self._rng("attempt", wkt, iso(acq_start))
        incidence = round(rng.uniform(2.0, min(q["incidence"], 45.0)), 2)
        meta = [
            {"key": "orderDeadLine", "value": iso(deadline)},
            {"key": "acqPeriod", "value": f"{iso(acq_start)} {iso(acq_end)}"},
            {"key": "maxIncidenceAngle", "value": f"{q['incidence']:.1f}"},
            {"key": "geometryWkt", "value": wkt},
        ]
        digest = hashlib.sha512(f"{self.seed}|{name}|{wkt}|{iso(acq_start)}".encode()).hexdigest()
        key = f"{digest}::{json.dumps(meta, separators=(',', ':'))}"
        self._segment_keys[key] = {
            "start": acq_start,
            "end": acq_end,
            "deadline": deadline,
            "incidence": incidence,
            "prog": name,
            "mission": q["mission"],
        }
        return {
            "id": f"{SATELLITE[q['mission']]}{k + 1}",
            "footprint": {"geometry": wkt, "center": f"POINT({lon:.6f} {lat:.6f})"},
            "instrumentMode": "THR",
            "orderDeadline": iso(deadline),
            "extendedAngle": False,
            "acquisitionStartDate": iso(acq_start),
            "acquisitionEndDate": iso(acq_end),
            "incidenceAngle": incidence,
            "acrossTrackIncidenceAngle": round(-incidence / 3, 6),
            "maxIncidenceAngle": q["incidence"],
            "segmentKey": key,
        }
