"""UP42 simulator (``docs/providers/up42.md``): the v2 tasking API (:mod:`.app`) and UP42 storage
with its STAC API and downloads (:mod:`.storage`), on one starlette app."""

from worker.simulators.up42.app import SimOrder, Up42SimConfig, Up42Simulator
from worker.simulators.up42.responses import spring_page
from worker.simulators.up42.storage import Up42Storage

__all__ = ["SimOrder", "Up42SimConfig", "Up42Simulator", "Up42Storage", "spring_page"]
