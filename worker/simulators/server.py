"""Both provider simulators as real HTTP servers on loopback (``tasking-worker simulate``, the demo,
the integration and reliability suites).

The worker is pointed at them only through its documented settings
(``TASKING_ONEATLAS__BASE_URL`` / ``__AUTH_URL`` / ``__SEARCH_URL`` / ``__DATA_URL``,
``TASKING_UP42__BASE_URL`` / ``__AUTH_URL``), exactly as it would be pointed at the real services.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.httpserver import ServerHandle, serve
from worker.simulators.common import SimClock, SimulatorCore
from worker.simulators.oneatlas import OneAtlasSimulator
from worker.simulators.up42 import Up42Simulator

#: The end users a worker pointed at the simulators declares (TASKING_ONEATLAS__END_USERS).
SIMULATED_END_USERS = '[{"endUserName": "Simulated End User", "country": "FR"}]'


@dataclass
class RunningSimulators:
    """The two simulators, their servers and the worker settings that point at them."""

    oneatlas: OneAtlasSimulator
    up42: Up42Simulator
    oneatlas_server: ServerHandle
    up42_server: ServerHandle
    host: str = "127.0.0.1"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def oneatlas_url(self) -> str:
        return f"http://{self.host}:{self.oneatlas_server.port}"

    @property
    def up42_url(self) -> str:
        return f"http://{self.host}:{self.up42_server.port}"

    def worker_env(self) -> dict[str, str]:
        """``TASKING_*`` variables that point a worker at these simulators with their credentials."""
        return {
            "TASKING_ONEATLAS__API_KEY": self.oneatlas.api_key,
            "TASKING_ONEATLAS__CONTRACT_ID": self.oneatlas.legacy_contract_id,
            "TASKING_ONEATLAS__NEO_CONTRACT_ID": self.oneatlas.neo_contract_id,
            "TASKING_ONEATLAS__WORKSPACE_ID": self.oneatlas.workspace_id,
            # Required with the API key: the end users declared on every OneAtlas order.
            "TASKING_ONEATLAS__END_USERS": SIMULATED_END_USERS,
            "TASKING_ONEATLAS__BASE_URL": self.oneatlas_url,
            # One simulator app serves the order, data, search and access hosts.
            "TASKING_ONEATLAS__SEARCH_URL": self.oneatlas_url,
            "TASKING_ONEATLAS__DATA_URL": self.oneatlas_url,
            "TASKING_ONEATLAS__AUTH_URL": (
                f"{self.oneatlas_url}/auth/realms/IDP/protocol/openid-connect/token"
            ),
            "TASKING_UP42__USERNAME": self.up42.username,
            "TASKING_UP42__PASSWORD": self.up42.password,
            "TASKING_UP42__BASE_URL": self.up42_url,
            "TASKING_UP42__AUTH_URL": f"{self.up42_url}/realms/public/protocol/openid-connect/token",
            **self.extra_env,
        }

    async def stop(self) -> None:
        await self.oneatlas_server.stop()
        await self.up42_server.stop()


async def start_simulators(
    speed: float = 1.0, host: str = "127.0.0.1", oneatlas_port: int = 0, up42_port: int = 0
) -> RunningSimulators:
    """Start both simulators sharing one simulated clock running ``speed`` times real time."""
    clock = SimClock(speed=speed)
    oneatlas = OneAtlasSimulator(SimulatorCore(clock=clock), raise_on_lost_response=False)
    up42 = Up42Simulator(SimulatorCore(clock=clock))
    oneatlas_server = await serve(oneatlas.app, host, oneatlas_port)
    up42_server = await serve(up42.app, host, up42_port)
    return RunningSimulators(oneatlas, up42, oneatlas_server, up42_server, host)
