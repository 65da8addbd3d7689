"""A downloaded product as a local STAC item that tools open: unpacked, with raster assets.

:func:`localize` completes the local copy of an item (``download.write_local_item``):

* every downloaded zip (the OneAtlas DIMAP bundle, the UP42 original delivery) is unpacked into
  ``{item folder}/{zip stem}/`` (members that would land outside it are refused; an archive
  already unpacked is not unpacked again); a file that is not a zip is left as it is (noted);
* every raster inside (``IMG_*.TIF``/``.JP2``, any ``.tif``/``.tiff``) becomes an asset:
  ``panchromatic`` (DIMAP ``_P_``), ``multispectral`` (``_MS_``, or any raster of more than one
  band), ``pansharpened`` (``_PMS``), else ``data``; a second raster of a kind gets ``-2``…; each
  ``DIM_*.XML`` becomes ``metadata-dimap``; the zip itself stays an asset;
* every raster asset, unpacked or downloaded as it is (UP42 GeoTIFFs), gets its projection from
  the file itself (``proj:code``, ``proj:shape``, ``proj:transform``) and ``bands``: the
  sensor's table (:mod:`worker.events.stac_vocabulary`) when the file has as many bands as the
  table, else one ``{"name": "b{n}"}`` per band.

Raster headers are read with rasterio (ADR 0009). Hrefs are relative to the item file.

Raises nothing for a bad archive or an unreadable raster: they are reported through ``note``
and left out, so the files that were downloaded are still described.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Final

from worker.events.stac_collections import GEOTIFF, asset_bands, asset_gsd, sensor_of_collection
from worker.events.stac_vocabulary import Sensor

EO: Final = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
PROJECTION: Final = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
_RASTER_SUFFIXES: Final = (".tif", ".tiff", ".jp2")
_DONE: Final = ".unpacked"  # marker written once an archive is completely unpacked

Note = Callable[[str], None]


def localize(item: dict[str, Any], folder: Path, downloaded: dict[str, Path], note: Note) -> None:
    """Add the unpacked rasters and file-read projections to the local ``item`` (in place).

    ``downloaded`` maps asset keys to the files that are now in ``folder``.
    """
    sensor = sensor_of_collection(str(item.get("collection") or ""))
    assets: dict[str, Any] = item.setdefault("assets", {})
    for key, path in sorted(downloaded.items()):
        if path.suffix.lower() == ".zip":
            root = _unpack(path, note)
            if root is not None:
                _add_members(assets, root, folder, sensor, note)
        elif path.suffix.lower() in _RASTER_SUFFIXES and isinstance(assets.get(key), dict):
            _describe(assets[key], path, key, sensor, note)
    _extensions(item)


def _unpack(archive: Path, note: Note) -> Path | None:
    root = archive.with_name(archive.stem)
    if (root / _DONE).exists():
        return root
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                name = PurePosixPath(member.filename)
                if name.is_absolute() or ".." in name.parts:
                    note(f"{archive.name}: member {member.filename!r} would leave the folder: skipped")
                    continue
                bundle.extract(member, root)
    except zipfile.BadZipFile:
        note(f"{archive.name}: not a zip archive, kept as it is")
        return None
    (root / _DONE).write_text("complete\n", encoding="utf-8")
    return root


def _kind(path: Path, bands: int) -> str:
    name = path.name.upper()
    if "_PMS" in name:
        return "pansharpened"
    if "_P_" in name:
        return "panchromatic"
    if "_MS_" in name or "_MS-" in name or bands > 1:
        return "multispectral"
    return "data"


def _unique(assets: dict[str, Any], base: str) -> str:
    key, n = base, 1
    while key in assets:
        n += 1
        key = f"{base}-{n}"
    return key


def _add_members(assets: dict[str, Any], root: Path, folder: Path, sensor: Sensor | None, note: Note) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        href = "./" + path.relative_to(folder).as_posix()
        if path.suffix.lower() in _RASTER_SUFFIXES:
            header = _header(path, note)
            if header is None:
                continue
            kind = _kind(path, header["count"])
            key = _unique(assets, kind)
            roles = ["data", kind] if kind != "data" else ["data"]
            assets[key] = {"href": href, "type": GEOTIFF, "roles": roles, "title": path.name}
            _apply(assets[key], header, kind, sensor)
        elif path.name.upper().startswith("DIM_") and path.suffix.upper() == ".XML":
            assets[_unique(assets, "metadata-dimap")] = {
                "href": href,
                "type": "application/xml",
                "roles": ["metadata"],
                "title": path.name,
            }


def _describe(asset: dict[str, Any], path: Path, key: str, sensor: Sensor | None, note: Note) -> None:
    header = _header(path, note)
    if header is not None:
        kind = (
            key.split("-", maxsplit=1)[0]
            if key.split("-", maxsplit=1)[0] in ("multispectral", "panchromatic")
            else _kind(path, 0)
        )
        _apply(asset, header, kind, sensor)


def _header(path: Path, note: Note) -> dict[str, Any] | None:
    """CRS, shape, transform and band count of a raster file (rasterio; nothing else is read)."""
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as dataset:
            epsg = dataset.crs.to_epsg() if dataset.crs is not None else None
            return {
                "code": f"EPSG:{epsg}" if epsg is not None else None,
                "shape": [int(dataset.height), int(dataset.width)],
                "transform": [float(v) for v in list(dataset.transform)[:6]],
                "count": int(dataset.count),
            }
    except RasterioError as exc:
        note(f"{path.name}: not a readable raster ({exc}); left out")
        return None


def _apply(asset: dict[str, Any], header: dict[str, Any], kind: str, sensor: Sensor | None) -> None:
    """Projection from the file; bands from the sensor's table when the count matches."""
    for name in ("proj:epsg", "proj:code", "proj:shape", "proj:transform", "proj:bbox"):
        asset.pop(name, None)
    if header["code"] is not None:
        asset["proj:code"] = header["code"]
    asset["proj:shape"] = header["shape"]
    asset["proj:transform"] = header["transform"]
    table = asset_bands(kind, sensor)
    if table is not None and len(table) == header["count"]:
        asset["bands"] = table
        gsd = asset_gsd(kind, sensor)
        if gsd is not None:
            asset.setdefault("gsd", gsd)
    else:
        asset["bands"] = [{"name": f"b{n}"} for n in range(1, header["count"] + 1)]


def _extensions(item: dict[str, Any]) -> None:
    assets = [a for a in (item.get("assets") or {}).values() if isinstance(a, dict)]
    extensions = list(item.get("stac_extensions") or [])
    uses_proj = any(name.startswith("proj:") for a in assets for name in a) or any(
        name.startswith("proj:") for name in item.get("properties") or {}
    )
    uses_eo = any("eo:common_name" in b for a in assets for b in a.get("bands") or [])
    for url, used in ((PROJECTION, uses_proj), (EO, uses_eo)):
        if used and url not in extensions:
            extensions.append(url)
    item["stac_extensions"] = extensions
