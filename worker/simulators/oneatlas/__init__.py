"""The OneAtlas simulator (auth, order.api, and the delivery hosts: data, search, access).

* :mod:`.simulator`: :class:`OneAtlasSimulator`, the ASGI app, its routing, auth and operator
  controls;
* :mod:`.catalogue`, :mod:`.ordering`, :mod:`.tracking`: the order.api endpoints;
* :mod:`.state`: the shared state and the lazy order lifecycle;
* :mod:`.model`, :mod:`.helpers`: records, constants, error answers and pure helpers.
"""

from worker.simulators.oneatlas.model import AUTH_PATH, DEFAULT_CONTRACTS, SimContract, SimError
from worker.simulators.oneatlas.simulator import OneAtlasSimulator

__all__ = ["AUTH_PATH", "DEFAULT_CONTRACTS", "OneAtlasSimulator", "SimContract", "SimError"]
