"""Airbus OneAtlas tasking adapter (package)."""

from worker.providers.oneatlas.provider import OneAtlasProvider, legacy_snapshot

__all__ = ["OneAtlasProvider", "legacy_snapshot"]
