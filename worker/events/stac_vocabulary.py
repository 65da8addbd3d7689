"""One STAC vocabulary for the satellites both providers sell (``docs/stac.md``, "Vocabulary").

OneAtlas says ``PHR1B`` / ``PHR``, UP42 says ``PHR-1A`` / ``PHR``: a search for Pléiades across
providers must not split in two. :func:`satellite` maps either provider's platform (or, without
one, its constellation) to one :class:`Satellite` with the STAC best-practice values: lowercase
``platform`` and ``constellation`` identifiers, the ``instruments`` and the band table of the
sensor. The provider's own values stay in provider-prefixed properties (``oneatlas:platform``,
``up42:platform``...), set by :func:`vocabulary_properties`.

Band centres and widths (micrometres) are the manufacturer's published spectral ranges: the
centre is the middle of the range and the width the range itself (``eo:full_width_half_max`` is
that range, a close approximation for these sensors). The multispectral order is the order of
the bands in the products' multispectral rasters (Airbus delivers red, green, blue, near
infrared, then Pléiades Neo's red edge and deep blue).

This module does no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Band:
    """One spectral band: ``name`` as the provider names it, ``common_name`` from the eo
    extension's list, centre and width in micrometres."""

    name: str
    common_name: str
    center: float
    width: float

    def stac(self) -> dict[str, Any]:
        """The band as a STAC 1.1 ``bands`` entry (eo extension v2 fields)."""
        return {
            "name": self.name,
            "eo:common_name": self.common_name,
            "eo:center_wavelength": self.center,
            "eo:full_width_half_max": self.width,
        }


def _band(name: str, common: str, low: float, high: float) -> Band:
    return Band(name, common, round((low + high) / 2, 4), round(high - low, 4))


@dataclass(frozen=True)
class Sensor:
    """A family of satellites with one imager: its pan band, multispectral bands and native gsd."""

    constellation: str
    title: str
    instruments: tuple[str, ...]
    panchromatic: Band
    multispectral: tuple[Band, ...]
    pan_gsd: float
    ms_gsd: float
    first_launch: str  # RFC 3339: the start of the collection's temporal extent


PLEIADES: Final = Sensor(
    constellation="pleiades",
    title="Pléiades",
    instruments=("hiri",),
    panchromatic=_band("P", "pan", 0.47, 0.83),
    multispectral=(
        _band("B2", "red", 0.62, 0.70),
        _band("B1", "green", 0.51, 0.59),
        _band("B0", "blue", 0.43, 0.55),
        _band("B3", "nir", 0.74, 0.94),
    ),
    pan_gsd=0.5,
    ms_gsd=2.0,
    first_launch="2011-12-17T00:00:00Z",
)
SPOT: Final = Sensor(
    constellation="spot",
    title="SPOT 6/7",
    instruments=("naomi",),
    panchromatic=_band("P", "pan", 0.45, 0.745),
    multispectral=(
        _band("B2", "red", 0.625, 0.695),
        _band("B1", "green", 0.53, 0.59),
        _band("B0", "blue", 0.45, 0.52),
        _band("B3", "nir", 0.76, 0.89),
    ),
    pan_gsd=1.5,
    ms_gsd=6.0,
    first_launch="2012-09-09T00:00:00Z",
)
PLEIADES_NEO: Final = Sensor(
    constellation="pleiades-neo",
    title="Pléiades Neo",
    instruments=("pneo-imager",),
    panchromatic=_band("P", "pan", 0.45, 0.80),
    multispectral=(
        _band("R", "red", 0.62, 0.69),
        _band("G", "green", 0.53, 0.59),
        _band("B", "blue", 0.45, 0.52),
        _band("NIR", "nir", 0.77, 0.88),
        _band("RE", "rededge", 0.70, 0.75),
        _band("DB", "coastal", 0.40, 0.45),
    ),
    pan_gsd=0.3,
    ms_gsd=1.2,
    first_launch="2021-04-29T00:00:00Z",
)
SENSORS: Final = {s.constellation: s for s in (PLEIADES, SPOT, PLEIADES_NEO)}


@dataclass(frozen=True)
class Satellite:
    """One satellite in the STAC vocabulary."""

    platform: str
    sensor: Sensor

    @property
    def constellation(self) -> str:
        return self.sensor.constellation


# Provider platform names, upper-cased without separators (``PHR-1A`` and ``PHR1A`` are one key).
_PLATFORMS: Final = {
    "PHR1A": Satellite("pleiades-1a", PLEIADES),
    "PHR1B": Satellite("pleiades-1b", PLEIADES),
    "SPOT6": Satellite("spot-6", SPOT),
    "SPOT7": Satellite("spot-7", SPOT),
    "PNEO3": Satellite("pleiades-neo-3", PLEIADES_NEO),
    "PNEO4": Satellite("pleiades-neo-4", PLEIADES_NEO),
    "PNEO5": Satellite("pleiades-neo-5", PLEIADES_NEO),
    "PNEO6": Satellite("pleiades-neo-6", PLEIADES_NEO),
}
# Provider constellation names (and UP42 product collection names) → sensor.
_CONSTELLATIONS: Final = {
    "PHR": PLEIADES,
    "PLEIADES": PLEIADES,
    "SPOT": SPOT,
    "PNEO": PLEIADES_NEO,
    "PLEIADESNEO": PLEIADES_NEO,
}
_SEPARATORS = re.compile(r"[^A-Z0-9]")


def _with_stac_names() -> None:
    """The vocabulary's own values map to themselves (items published before it, re-read)."""
    for satellite in list(_PLATFORMS.values()):
        _PLATFORMS.setdefault(_key(satellite.platform), satellite)
    for sensor in SENSORS.values():
        _CONSTELLATIONS.setdefault(_key(sensor.constellation), sensor)


def _key(value: Any) -> str:
    return _SEPARATORS.sub("", str(value).upper()) if value is not None else ""


def sensor_of(platform: Any, constellation: Any) -> Sensor | None:
    """The sensor of a provider's platform (e.g. ``PHR-1A``), else of its constellation or
    product name (``PHR``, ``pneo``), else ``None`` (an unknown satellite)."""
    known = _PLATFORMS.get(_key(platform))
    if known is not None:
        return known.sensor
    key = _key(constellation)
    # Longest names first: ``PNEO...`` and ``PLEIADESNEO...`` before ``PHR`` and ``PLEIADES``.
    for name in sorted(_CONSTELLATIONS, key=len, reverse=True):
        if key.startswith(name):
            return _CONSTELLATIONS[name]
    return None


def vocabulary_properties(provider: str, platform: Any, constellation: Any) -> dict[str, Any]:
    """The STAC ``platform``, ``constellation`` and ``instruments`` of a product, and the
    provider's own values as ``{provider}:platform`` / ``{provider}:constellation``.

    An unknown satellite keeps the provider's values, lower-cased, in ``platform`` and
    ``constellation`` (so nothing is lost) and gets no ``instruments``.
    """
    out: dict[str, Any] = {}
    for name, value in (("platform", platform), ("constellation", constellation)):
        if value is not None and str(value):
            out[f"{provider}:{name}"] = str(value)
    sensor = sensor_of(platform, constellation)
    known = _PLATFORMS.get(_key(platform))
    if known is not None:
        out["platform"] = known.platform
    elif platform is not None and str(platform):
        out["platform"] = str(platform).lower()
    if sensor is not None:
        out["constellation"] = sensor.constellation
        out["instruments"] = list(sensor.instruments)
    elif constellation is not None and str(constellation):
        out["constellation"] = str(constellation).lower()
    return out


_PROVIDER_NAMES: Final = frozenset(_PLATFORMS)
_with_stac_names()


def mapping_rows() -> list[tuple[str, str, str, str]]:
    """``(provider value, platform, constellation, instruments)`` rows of the mapping table
    (``docs/stac.md`` prints it; a test checks the two agree)."""
    return [
        (name, s.platform, s.constellation, ", ".join(s.sensor.instruments))
        for name, s in _PLATFORMS.items()
        if name in _PROVIDER_NAMES
    ]
