"""The OneAtlas simulator (package)."""

from worker.simulators.oneatlas.simulator import AUTH_PATH, DEFAULT_CONTRACTS, OneAtlasSimulator

__all__ = ["AUTH_PATH", "DEFAULT_CONTRACTS", "OneAtlasSimulator"]
