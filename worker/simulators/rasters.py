"""Small real GeoTIFFs and DIMAP-shaped zips for the simulators' deliveries, made in code.

Every raster is a deflate-compressed GeoTIFF in the UTM zone of its footprint's centre (as ortho
products are), covering the footprint's bounds: a multispectral image (one band per entry of
the sensor's table, uint16) and a panchromatic one (four times finer, one band). Pixel values
are a smooth seeded pattern, so files are a few kilobytes and the same product always has the
same bytes (the checksums the simulators announce stay true). :func:`dimap_zip` packs them as a
OneAtlas DIMAP bundle (``IMG_*_P_001/`` and ``IMG_*_MS_002/`` folders, each with its
``DIM_*.XML`` and ``IMG_*_R1C1.TIF``), padded to a requested size with a stored filler entry.

Uses rasterio (ADR 0009); the simulators are test and demo tools, never part of a worker's
request path.
"""

from __future__ import annotations

import io
import math
import random
import zipfile
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

import numpy as np
import rasterio
from affine import Affine
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds
from shapely.geometry import shape

MS_PIXELS: Final = 16  # multispectral width and height; panchromatic is 4x finer
PAN_FACTOR: Final = 4
_ZIP_TIME: Final = (2026, 1, 1, 0, 0, 0)


def utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the WGS84 UTM zone of a position."""
    zone = min(60, max(1, math.floor((lon + 180.0) / 6.0) + 1))
    return (32600 if lat >= 0 else 32700) + zone


def _bounds(geometry: Mapping[str, Any]) -> tuple[int, tuple[float, float, float, float]]:
    footprint = shape(dict(geometry))
    centre = footprint.centroid
    epsg = utm_epsg(centre.x, centre.y)
    west, south, east, north = transform_bounds("EPSG:4326", f"EPSG:{epsg}", *footprint.bounds)
    return epsg, (west, south, east, north)


def geotiff(geometry: Mapping[str, Any], bands: int, pixels: int, seed: str) -> bytes:
    """A GeoTIFF of ``bands`` uint16 bands, ``pixels`` x ``pixels``, over the footprint's bounds
    in its UTM zone."""
    return _geotiff(_key(geometry), bands, pixels, seed)


def _key(geometry: Mapping[str, Any]) -> str:
    import orjson

    return orjson.dumps(dict(geometry), option=orjson.OPT_SORT_KEYS).decode()


@lru_cache(maxsize=256)
def _geotiff(geometry_json: str, bands: int, pixels: int, seed: str) -> bytes:
    import orjson

    epsg, (west, south, east, north) = _bounds(orjson.loads(geometry_json))
    rng = random.Random(seed)
    y, x = np.mgrid[0:pixels, 0:pixels].astype("float64") / max(pixels - 1, 1)
    data = np.stack(
        [
            (1000 + 800 * np.sin(math.pi * (x * rng.uniform(1, 3) + y * rng.uniform(1, 3)))).astype("uint16")
            for _ in range(bands)
        ]
    )
    profile = {
        "driver": "GTiff",
        "width": pixels,
        "height": pixels,
        "count": bands,
        "dtype": "uint16",
        "crs": rasterio.crs.CRS.from_epsg(epsg),
        "transform": Affine((east - west) / pixels, 0.0, west, 0.0, -(north - south) / pixels, north),
        "compress": "deflate",
        "nodata": 0,
    }
    with MemoryFile() as memory:
        with memory.open(**profile) as dataset:
            dataset.write(data)
        return bytes(memory.read())


def raster_projection(data: bytes, epsg_key: str = "proj:code") -> dict[str, Any]:
    """The projection fields of a GeoTIFF's bytes: ``proj:code`` (or UP42's older ``proj:epsg``
    with ``epsg_key``), ``proj:shape`` and ``proj:transform``."""
    with MemoryFile(data) as memory, memory.open() as dataset:
        epsg = dataset.crs.to_epsg()
        return {
            epsg_key: epsg if epsg_key == "proj:epsg" else f"EPSG:{epsg}",
            "proj:shape": [dataset.height, dataset.width],
            "proj:transform": [float(v) for v in list(dataset.transform)[:6]],
        }


def _dim_xml(name: str, bands: int, epsg: int) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Dimap_Document name="{name}">\n'
        "  <Metadata_Identification><METADATA_FORMAT>DIMAP</METADATA_FORMAT></Metadata_Identification>\n"
        f"  <Raster_Data><Raster_Dimensions><NBANDS>{bands}</NBANDS></Raster_Dimensions></Raster_Data>\n"
        f"  <Coordinate_Reference_System><Projected_CRS><PROJECTED_CRS_CODE>urn:ogc:def:crs:EPSG::{epsg}"
        "</PROJECTED_CRS_CODE></Projected_CRS></Coordinate_Reference_System>\n"
        "</Dimap_Document>\n"
    ).encode()


def dimap_zip(geometry: Mapping[str, Any], platform: str, ms_bands: int, seed: str, size: int = 0) -> bytes:
    """A OneAtlas DIMAP bundle (see the module docstring), at least ``size`` bytes."""
    epsg, _ = _bounds(geometry)
    stamp = f"{random.Random(seed).getrandbits(40):012d}"
    files: dict[str, bytes] = {}
    for kind, folder, bands, pixels in (
        ("P", "001", 1, MS_PIXELS * PAN_FACTOR),
        ("MS", "002", ms_bands, MS_PIXELS),
    ):
        base = f"IMG_{platform}_{kind}_{folder}"
        name = f"{platform}_{kind}_{stamp}_ORT"
        files[f"{base}/DIM_{name}.XML"] = _dim_xml(name, bands, epsg)
        files[f"{base}/IMG_{name}_R1C1.TIF"] = geotiff(geometry, bands, pixels, f"{seed}:{kind}")
    files["LICENCE.TXT"] = b"Simulated product: no licence, no real imagery.\n"
    body = _zip(files)
    if len(body) < size:
        with_filler = _zip({**files, "FILLER.BIN": b""})
        body = _zip({**files, "FILLER.BIN": b"\0" * max(0, size - len(with_filler))})
    return body


def _zip(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            # Rasters are compressed already; the filler is stored so the size is exact.
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, data)
    return buffer.getvalue()
