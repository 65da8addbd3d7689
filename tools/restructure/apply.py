"""Restructure `worker` into rings (issue 26), idempotently, on whatever the code is when it runs.

Run from the repository root:  python tools/restructure/apply.py [--dry-run] [--no-check]

What it does, in order (every step is a no-op when its result is already there):

1. Whole-module moves (MOVES): helpers to the ground (cooperative, crashpoints, wkt, tokens), the
   order identity to the domain. Modules a table does not name but that are imported against the
   rings and import only inner rings move inward by rule (after the imports are rewritten).
2. Splits by name (SPLITS): the top-level definitions of a module, selected BY NAME with `ast`, go
   to the modules of the split. Rules for names the tables do not know (definitions added since
   the tables were written): a name matching a target's pattern goes there; otherwise a name lives
   in the lowest module of the split that uses it, or in the split's default module when none does.
   Modules of a split are ordered; a module may import only from modules below it, so a name that
   a lower module uses is pulled down (a warning says so when it was listed elsewhere). Imports are
   copied and pruned to what each module uses; `log = get_logger(__name__)` and type variables are
   repeated where used; a module-level statement follows the definition it refers to.
3. Every `.py` file of worker/, tests/, bench/ has its imports rewritten: `from m import name` of a
   moved name, `from pkg import module` of a moved module, `import m as x` + `x.name` attribute uses,
   `monkeypatch.setattr(x, "name", ...)`; then dotted names and file paths in strings, comments and
   docs (`"worker.cli.load_settings"`, `python -m worker....`, `worker/kafka/intake.py`) are
   rewritten in worker/, tests/, bench/, docs/, README, CONTRIBUTING, Makefile, Dockerfile, helm/.
4. pyproject: `import-linter` in the dev dependencies and the contracts in [tool.importlinter]
   (the rings of RINGS/GROUND, for the units that exist; an unknown top-level module joins the
   ground when it imports only the ground, else it is named in a warning); Makefile:
   `lint-imports` in `make check`; tests/unit/test_import_contracts.py (the same check in
   `make test`, which CI runs).
5. `ruff check --fix --select I,F401` and `ruff format` on the files it changed, then
   `lint-imports`. Exit status 1 when a contract fails, 2 when a split could not be applied.

Unknown names and anything else worth a look are printed as warnings at the end.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path.cwd()
WARNINGS: list[str] = []
CHANGED: set[Path] = set()
SUMMARY: list[str] = []
DRY = False


def warn(text: str) -> None:
    WARNINGS.append(text)


# ============================================================================ tables

# Whole modules, old -> new. A package entry ("worker.commands.*") moves each of its modules.
MOVES: list[tuple[str, str]] = [
    ("worker.runtime.cooperative", "worker.cooperative"),
    ("worker.runtime.crashpoints", "worker.crashpoints"),
    ("worker.providers.wkt", "worker.wkt"),
    # token lifecycles (TokenSource) serve the providers, the Kafka OAUTHBEARER login and downloads
    ("worker.providers.auth", "worker.tokens"),
    # the identity of an order beyond its customer reference (adoption checks): domain and adapters use it
    ("worker.providers.identity", "worker.domain.identity"),
]


@dataclass
class Target:
    module: str
    names: tuple[str, ...] = ()
    doc: str = ""
    patterns: tuple[str, ...] = ()  # regexes over unknown names


@dataclass
class Split:
    source: str
    modules: list[Target]  # lowest first; the source itself is one of them unless dissolved
    default: str  # where an unknown name nobody uses goes
    package: bool = False  # the source module becomes a package (source/__init__.py)
    # dynamic modules: unknown names matching the regex go to the module named by the template
    dynamic: tuple[tuple[str, str, str], ...] = ()  # (regex with group 'stem', module template, doc)
    why: str = ""
    # the package imports each of its modules (they register themselves, e.g. CLI commands)
    register: bool = False


PORT_DOC = '''"""The ports of the domain: the `TaskingProvider` protocol and the project-owned types that cross it.

Adapters (the packages ``worker.providers.oneatlas`` and ``worker.providers.up42``) implement the
protocol and translate between these types and the providers' HTTP APIs; nothing outside an adapter
ever sees an ``httpx.Response`` or a provider payload. Every type here is a frozen pydantic model so
the domain core can keep it in the durable order state as JSON. The delivered-product types, which
the public DeliveryEvent is built from, live with the contract (``worker.events.products``).

Failure modes are the project's error tree (``worker.errors``): every method may raise
``ProviderUnavailable`` (retriable: 5xx, connection errors, read timeouts, 429 as ``RateLimited``),
``ProviderAuthError`` (credentials refused), ``ProviderProtocolError`` (an answer not shaped as
documented) and ``ProviderNotConfigured``. Methods that write (place an order, decide a quotation,
choose an option, decide an acquisition, cancel) may also raise ``OutcomeUnknown`` when the request
may have reached the provider but no answer came back: the caller must reconcile, never re-send.
"""'''

SPLITS: list[Split] = [
    Split(
        source="worker.providers.base",
        why="the ports belong to the domain; the product types the public DeliveryEvent is built from "
        "belong to the contract (events/)",
        modules=[
            Target(
                "worker.events.products",
                names=("ProviderModel", "Refs", "ProductAsset", "Instant", "DeliveredProduct"),
                doc='"""Delivered products, in the project\'s own types: what an adapter finds and what the '
                "public\nDeliveryEvent (``worker.events.delivery``) is built from.\n\nFrozen pydantic "
                'models (strict about unknown fields), kept in the durable order state as JSON.\n"""',
            ),
            Target(
                "worker.domain.ports",
                names=(
                    "FeasibilityResult", "Attempt", "OrderContext", "PriceQuote", "PlacedOrder", "StudyOption",
                    "StudyDecision", "FeasibilityStudy", "QuotationDecision", "Quotation", "RemotePhase",
                    "AcquisitionCounts", "OrderSnapshot", "stable_fingerprint", "PolledOrder", "Acquisition",
                    "DeliveryHarvest", "TaskingProvider",
                ),
                doc=PORT_DOC,
            ),
        ],
        default="worker.domain.ports",
    ),
    Split(
        source="worker.kafka.intake",
        why="the intake's consumer loop is orchestration (runtime); building the consumer is adapter code",
        modules=[
            Target(
                "worker.kafka.consumer",
                names=("make_consumer",),
                doc='"""The intake\'s Kafka consumer: manual commits, earliest reset, range assignment '
                '(co-partitioning).\n\nThe loop that drives it is ``worker.runtime.intake``.\n"""',
            ),
            Target(
                "worker.runtime.intake",
                names=("IntakeMetrics", "HealthSink", "Intake", "_provider_of", "_Rebalance"),
            ),
        ],
        default="worker.runtime.intake",
    ),
    Split(
        source="worker.observability.http",
        why="the embedded uvicorn server is a helper of several rings (probes, simulators, demo, bench)",
        modules=[
            Target(
                "worker.httpserver",
                names=("ServerHandle", "serve", "_EmbeddedServer", "_bind"),
                doc='"""An ASGI app served by uvicorn inside the running event loop, on a socket bound '
                'first (port 0:\na free port), for the probes, the simulators, the demo and the '
                'benchmarks.\n"""',
            ),
            Target(
                "worker.observability.http",
                names=("OK", "Verdict", "Health", "create_app", "_verdict_response"),
            ),
        ],
        default="worker.observability.http",
    ),
    Split(
        source="worker.events.schemas",
        why="the registry of schemas apart from the generation of the documents",
        modules=[
            Target(
                "worker.events.schemas",
                names=(
                    "JSON_SCHEMA_DIALECT",
                    "Mode",
                    "SchemaSpec",
                    "SPECS",
                    "SPEC_BY_NAME",
                    "json_schema",
                    "delivery_schema",
                    "spec_for",
                    "_objects",
                    "_drop_property_titles",
                    "_all_properties_required",
                    "_tighten_order_request",
                    "_product_for",
                ),
            ),
            Target(
                "worker.events.examples",
                names=(
                    "_T0", "TOULOUSE", "PANAMA", "UP42_PLEIADES_PRODUCT", "_window", "input_examples", "_command",
                    "output_examples", "delivery_example", "example_payloads", "_CE_ID", "_message_examples",
                    "_example_headers", "_example_ce_id",
                ),
                doc='"""Example messages of the contract, one per message type and case: they go into '
                "``schemas/examples/``\nand into the AsyncAPI document, and every one is validated "
                'against its schema by the tests.\n"""',
            ),
            Target(
                "worker.events.asyncapi",
                names=(
                    "Channel", "CHANNELS", "asyncapi_document", "_channel", "_worker_state_channel", "_operation",
                    "_message_id", "_components", "_message", "_key_schema", "_headers_schema", "_info",
                    "_DESCRIPTION", "_STATUS_MEANING", "_status_table", "_DEAD_LETTER_MEANING",
                    "_dead_letter_table",
                ),
                doc='"""The AsyncAPI 3.0 document of the contract: channels, operations, messages with '
                'their headers,\nkeys and examples.\n"""',
            ),
            Target(
                "worker.events.schemafiles",
                names=(
                    "ASYNCAPI_FILE", "EXAMPLES_DIR", "_json_text", "_yaml_text", "_BlockDumper", "_represent_str",
                    "render", "write", "differences",
                ),
                doc='"""The files under ``schemas/``: :func:`render` builds every file\'s text, :func:`write` '
                "writes them\nand :func:`differences` (``tasking-worker schemas --check``) names the files "
                "that differ. Output is\ndeterministic: JSON with sorted keys and a trailing newline, "
                'YAML in a fixed order.\n"""',
            ),
        ],
        default="worker.events.schemas",
    ),
    Split(
        source="worker.cli",
        package=True,
        register=True,
        why="one module per command group; `worker.cli:main` stays the entry point",
        modules=[
            Target(
                "worker.cli.base",
                names=(
                    "app",
                    "console",
                    "errors",
                    "EXIT_FAILED",
                    "EXIT_BAD_INPUT",
                    "EXIT_TIMEOUT",
                    "EXIT_INTERRUPTED",
                    "F",
                    "prose",
                    "command",
                    "_settings",
                    "_kafka_kwargs",
                ),
                doc='"""The command-line application every command registers on, and what commands share: '
                'the consoles,\nthe exit codes, settings and Kafka client arguments.\n"""',
            ),
            Target("worker.cli.schemas", names=("schemas_command",), doc='"""``tasking-worker schemas``."""'),
            Target(
                "worker.cli.submit",
                names=(
                    "INPUT_SUFFIXES",
                    "expand_paths",
                    "_Loaded",
                    "_read_file",
                    "_load",
                    "_describe",
                    "submit_command",
                    "_publish",
                ),
                doc='"""``tasking-worker submit``: validate request/command files and publish the valid ones."""',
            ),
            Target(
                "worker.cli.tail",
                names=(
                    "_TailFilter",
                    "tail_command",
                    "_tail",
                    "_parse_event",
                    "_ce_type",
                    "_print_json",
                    "_STATUS_STYLE",
                    "_print_pretty",
                    "_status_line",
                    "_object",
                    "_delivery_line",
                    "_acquisition_line",
                    "_dead_letter_line",
                ),
                doc='"""``tasking-worker tail``: follow the output topics, with the lines it prints."""',
            ),
            Target("worker.cli.service", names=("run_command",), doc='"""``tasking-worker run``: the service."""'),
            Target(
                "worker.cli.status",
                names=("status_command", "latest_status", "_status_event", "_print_status"),
                doc='"""``tasking-worker status``: the latest status event of one request."""',
            ),
            Target(
                "worker.cli.download", names=("download_command",), doc='"""``tasking-worker download``."""'
            ),
            Target(
                "worker.cli.local",
                names=("simulate_command", "_simulate", "_until_signal", "demo_command"),
                doc='"""``tasking-worker simulate`` and ``tasking-worker demo``: everything on this machine."""',
            ),
            Target("worker.cli", names=("main",)),
        ],
        dynamic=((r"^(?P<stem>[a-z][a-z0-9_]*?)_command$", "worker.cli.{stem}", '"""``tasking-worker {stem}``."""'),),
        default="worker.cli",
    ),
    Split(
        source="worker.demo",
        package=True,
        why="stack, samples, live view and summary apart",
        modules=[
            Target(
                "worker.demo.samples",
                names=(
                    "BASE_SPEED",
                    "DEFAULT_SPEED",
                    "DEFAULT_TIMEOUT",
                    "TICK_SECONDS",
                    "ACQUISITION_GRACE_SECONDS",
                    "DRAIN_SECONDS",
                    "PROVIDER_STATUSES",
                    "EXIT_OK",
                    "EXIT_FAILED",
                    "EXIT_TIMEOUT",
                    "Sample",
                    "SAMPLES",
                    "sample_text",
                    "load_samples",
                    "starting_at",
                    "Answer",
                    "over_budget",
                    "auto_answer",
                    "command_for",
                    "DemoOptions",
                ),
                doc='"""The demo\'s sample orders (``worker/samples/``) with their expected final status, '
                'its options\nand how it answers decisions like an automated client.\n"""',
            ),
            Target(
                "worker.demo.view",
                names=(
                    "ACCEPTED_LIKE",
                    "REFUSED_LIKE",
                    "OrderView",
                    "Board",
                    "_STYLE",
                    "_status_text",
                    "_product",
                    "_provider",
                    "_as_direct",
                    "_price",
                    "_refs",
                    "_decision",
                    "live_table",
                    "status_line",
                    "_delivered",
                    "delivery_line",
                    "_offer_text",
                    "acquisition_line",
                    "Output",
                ),
                doc='"""The demo\'s live view: what it knows of each order, the live table and the plain lines."""',
            ),
            Target(
                "worker.demo.summary",
                names=("summary_table", "_report"),
                doc='"""The demo\'s final summary."""',
            ),
            Target(
                "worker.demo.stack",
                names=(
                    "demo_environment",
                    "Services",
                    "running_services",
                    "_stop_worker",
                    "kafka_clients",
                    "in_daemon_thread",
                    "_set_result",
                    "_set_exception",
                    "fast_forward",
                ),
                doc='"""The demo\'s stack on loopback: embedded broker, provider simulators, the worker '
                'and the client\'s\nKafka clients, started and stopped in order.\n"""',
            ),
            Target(
                "worker.demo",
                names=("Timeout", "WorkerStopped", "Demo", "run_async", "_client", "_until_done", "run"),
            ),
        ],
        default="worker.demo",
    ),
    Split(
        source="worker.runtime.runner",
        why="the runner's ports (metrics, step probe) and the events it builds apart from the step loop",
        modules=[
            Target(
                "worker.runtime.probes",
                names=("RunnerMetrics", "StepProbe", "_Marks", "utc_now"),
                doc='"""What the runner reports to: its metrics port and the optional per-step probe."""',
            ),
            Target(
                "worker.runtime.outcomes",
                names=(
                    "_paid_write_point",
                    "_offer_state",
                    "_offer_answer",
                    "_not_configured",
                    "invalid_request_event",
                ),
                doc='"""Pure helpers of the runner: the events and states it builds around a step '
                '(offer answers,\ninvalid requests, not-configured providers) and the crash point of a '
                'paid write.\n"""',
            ),
            Target(
                "worker.runtime.runner",
                names=("Runner", "_FEEDBACK_ATTEMPTS", "_TIMER_RETRY_SECONDS"),
            ),
        ],
        default="worker.runtime.runner",
    ),
]

# Rings, inside out, for the import contracts. Members that do not exist are left out.
GROUND = ["worker.errors", "worker.config", "worker.cooperative", "worker.crashpoints", "worker.wkt",
          "worker.tokens", "worker.httpserver"]
RINGS: list[list[str]] = [
    ["bench"],
    ["worker.cli"],
    ["worker.demo"],
    ["worker.commands"],  # command implementations apart from their parsing, shared by cli and demo
    ["worker.reference"],  # the generated references (settings, metrics, reason codes) for `docs`
    ["worker.display"],
    ["worker.app"],
    ["worker.runtime", "worker.delivery"],
    ["worker.providers", "worker.kafka", "worker.observability", "worker.api"],
    ["worker.domain"],
    ["worker.events"],
]
ADAPTERS = ["worker.providers", "worker.kafka", "worker.observability", "worker.delivery", "worker.api"]
ENTRY = ["worker.app", "worker.cli", "worker.demo", "worker.commands", "worker.reference", "worker.display"]


# ============================================================================ paths


def mod_path(module: str) -> Path | None:
    """The file of a module, or None."""
    base = ROOT.joinpath(*module.split("."))
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def exists(module: str) -> bool:
    return mod_path(module) is not None


def path_module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def write(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    CHANGED.add(path)
    if DRY:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def remove(path: Path) -> None:
    CHANGED.discard(path)
    if not DRY and path.exists():
        path.unlink()


def ensure_package(module: str) -> None:
    """Every package on the way to `module` has an __init__.py."""
    parts = module.split(".")[:-1]
    for i in range(1, len(parts) + 1):
        init = ROOT.joinpath(*parts[:i], "__init__.py")
        if ROOT.joinpath(*parts[:i]).with_suffix(".py").exists():
            continue  # `worker/cli.py` becomes the package's __init__ by its split
        if not init.exists():
            write(init, "")


def target_file(module: str, package: bool = False) -> Path:
    existing = mod_path(module)
    if existing:
        return existing
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if package else base.with_suffix(".py")


# ============================================================================ module moves

MODULE_MOVES: dict[str, str] = {}  # old dotted module -> new dotted module (filled as it goes)


def expand_moves() -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for old, new in MOVES:
        if old.endswith(".*"):
            pkg_old, pkg_new = old[:-2], new[:-2]
            folder = ROOT.joinpath(*pkg_old.split("."))
            if folder.is_dir():
                for file in sorted(folder.glob("*.py")):
                    if file.name != "__init__.py":
                        pairs.append((f"{pkg_old}.{file.stem}", f"{pkg_new}.{file.stem}"))
                MODULE_MOVES[pkg_old] = pkg_new  # for the package's own mentions
            continue
        pairs.append((old, new))
    return pairs


def do_moves() -> None:
    for old, new in expand_moves():
        MODULE_MOVES[old] = new
        src = ROOT.joinpath(*old.split(".")).with_suffix(".py")
        dst = ROOT.joinpath(*new.split(".")).with_suffix(".py")
        if not src.exists():
            if not dst.exists():
                MODULE_MOVES.pop(old, None)  # a module that may come with another change: nothing to do
            continue
        if dst.exists():
            warn(f"move {old} -> {new}: {dst.relative_to(ROOT)} exists already; {old} left in place")
            continue
        SUMMARY.append(f"moved  {old} -> {new}")
        ensure_package(new)
        if not DRY:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(src, dst)
        CHANGED.add(dst)
    # an emptied package (worker/commands/) goes
    for old, _ in MOVES:
        if old.endswith(".*"):
            folder = ROOT.joinpath(*old[:-2].split("."))
            if folder.is_dir() and not [p for p in folder.glob("*.py") if p.name != "__init__.py"]:
                if not DRY:
                    shutil.rmtree(folder)


def module_imports(path: Path) -> set[str]:
    """Absolute worker modules (or packages) a file imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    current, is_pkg = path_module(path), path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node, current, is_pkg)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {n for n in found if n.startswith("worker.") and (exists(n) or exists(n.rsplit(".", 1)[0]))}


def ring_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def rank_of(unit: str) -> int | None:
    for i, ring in enumerate(RINGS):
        if unit in ring:
            return i
    if unit in GROUND:
        return len(RINGS)
    return None


def plain_module(module: str) -> Path | None:
    path = mod_path(module)
    return path if path is not None and path.name != "__init__.py" else None


def auto_moves() -> None:
    """A plain module imported against the rings (outward or sideways) that imports only inner
    rings moves inward, to the highest place all its importers may reach: the domain, the
    contract or the ground. Anything else is left for the contracts to name."""
    events_rank, domain_rank = rank_of("worker.events"), rank_of("worker.domain")
    wanted: dict[str, set[str]] = {}
    for path in sorted((ROOT / "worker").rglob("*.py")):
        module = path_module(path)
        unit = ring_of(module)
        for imported in module_imports(path):
            target = imported if plain_module(imported) else None
            if target is None or ring_of(target) == unit or target.count(".") < 2:
                continue
            r_from, r_to = rank_of(unit), rank_of(ring_of(target))
            if unit == "worker.simulators":
                bad = ring_of(target) not in ("worker.events", *GROUND)
            else:
                bad = r_from is not None and r_to is not None and r_to <= r_from
            if bad:
                wanted.setdefault(target, set()).add(unit)
    for module, users_ in sorted(wanted.items()):
        path = plain_module(module)
        if path is None or module in MODULE_MOVES:
            continue
        deps = {ring_of(m) for m in module_imports(path)} - {ring_of(module)}
        lowest_user = max((rank_of(u) or 0) for u in users_ if u != "worker.simulators") \
            if users_ - {"worker.simulators"} else 0
        last = module.rsplit(".", 1)[1]
        if deps <= set(GROUND):
            new = f"worker.{last}"
        elif deps <= {*GROUND, "worker.events"} and (events_rank or 0) > lowest_user:
            new = f"worker.events.{last}"
        elif deps <= {*GROUND, "worker.events", "worker.domain"} and (domain_rank or 0) > lowest_user \
                and "worker.simulators" not in users_:
            new = f"worker.domain.{last}"
        else:
            warn(f"{module} is imported by {sorted(users_)} against the rings and imports {sorted(deps)}: "
                 "not moved (the contracts will name it)")
            continue
        if exists(new):
            warn(f"{module} would move to {new}, which exists: not moved")
            continue
        MODULE_MOVES[module] = new
        SUMMARY.append(f"moved  {module} -> {new} (imported by {', '.join(sorted(users_))}; imports only inward)")
        warn(f"{module} is not in the tables; moved to {new} because {sorted(users_)} import it")
        if new.count(".") == 1 and new not in GROUND:
            GROUND.append(new)
        if not DRY:
            shutil.move(path, ROOT.joinpath(*new.split(".")).with_suffix(".py"))
        CHANGED.add(ROOT.joinpath(*new.split(".")).with_suffix(".py"))


# ============================================================================ splitting

REPLICATED_CALLS = {"get_logger", "getLogger", "TypeVar", "ParamSpec", "TypeVarTuple"}


@dataclass(eq=False)
class Item:
    kind: str  # "header" | "def" | "stmt" | "replicate" | "all"
    text: str
    names: set[str] = field(default_factory=set)
    refs: set[str] = field(default_factory=set)
    anchor: Item | None = None
    order: int = 0
    home: str = ""
    explicit: bool = False

    @property
    def label(self) -> str:
        return ",".join(sorted(self.names)) or self.text.strip().splitlines()[0][:60]


def annotation_strings(tree: ast.AST) -> set[str]:
    """Names inside string annotations and cast() type arguments (forward references)."""
    found: set[str] = set()
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            roots.extend(a.annotation for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]
                         if a.annotation)
            for extra in (node.args.vararg, node.args.kwarg):
                if extra is not None and extra.annotation is not None:
                    roots.append(extra.annotation)
            if node.returns:
                roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "cast" and node.args:
            roots.append(node.args[0])
    for root in roots:
        for sub in ast.walk(root):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and len(sub.value) < 200:
                try:
                    expr = ast.parse(sub.value, mode="eval")
                except SyntaxError:
                    continue
                found |= {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
    return found


def used_names(nodes: list[ast.stmt]) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Store):
                found.add(sub.id)
        found |= annotation_strings(node)
    return found


def defined_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    elif sys.version_info >= (3, 12) and isinstance(node, ast.TypeAlias):  # type: ignore[attr-defined]
        return {node.name.id}
    names: set[str] = set()
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                names.add(sub.id)
            elif isinstance(sub, (ast.Attribute, ast.Subscript)):
                return set()  # `X.attr = ...`, `X[k] = ...`: a statement about X, not a definition
    return names


def is_type_checking(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        )
    )


def is_replicable(node: ast.stmt, module_names: set[str]) -> bool:
    if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
        return False
    value = node.value
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name not in REPLICATED_CALLS:
        return False
    refs = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
    return not (refs & module_names)


def parse_items(text: str) -> tuple[str, list[Item]]:
    """The module's docstring and its top-level items, each with the comment lines above it."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    body = list(tree.body)
    doc = ""
    start_line = 1
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        doc = "".join(lines[body[0].lineno - 1: body[0].end_lineno])
        start_line = (body[0].end_lineno or 0) + 1
        body = body[1:]
    module_names: set[str] = set()
    for node in body:
        module_names |= defined_names(node)
    items: list[Item] = []
    prev_end = start_line - 1
    for order, node in enumerate(body):
        first = min([node.lineno, *[d.lineno for d in getattr(node, "decorator_list", [])]])
        seg_start = prev_end + 1
        # keep the comment lines directly above (with the blank lines between) with this item
        j = first - 1  # 1-based number of the line above the item
        while j >= seg_start and (not lines[j - 1].strip() or lines[j - 1].lstrip().startswith("#")):
            j -= 1
        lead = "".join(lines[j: first - 1]).strip("\n")
        chunk = "".join(lines[first - 1: node.end_lineno])
        prev_end = node.end_lineno or first
        item_text = (lead + "\n" if lead.strip() else "") + chunk
        item = Item(kind="def", text=item_text, order=order)
        if isinstance(node, (ast.Import, ast.ImportFrom)) or is_type_checking(node):
            item.kind = "header"
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            item.kind = "all"
            item.names = {"__all__"}
            item.refs = {
                e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
        elif is_replicable(node, module_names):
            item.kind = "replicate"
            item.names = defined_names(node)
            item.refs = used_names([node])
        else:
            names = defined_names(node)
            item.names = names
            item.refs = used_names([node]) - names if names else used_names([node])
            if not names:
                item.kind = "stmt"
        if item.kind == "stmt" and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str) and items and items[-1].kind in ("def", "replicate"):
            items[-1].text = items[-1].text.rstrip("\n") + "\n" + item_text  # an attribute docstring
            continue
        items.append(item)
    # a statement follows the last definition above it that it refers to
    defs_by_name = {n: it for it in items if it.kind == "def" for n in it.names}
    for i, item in enumerate(items):
        if item.kind == "stmt" and item.anchor is None:
            candidates = [defs_by_name[r] for r in item.refs if r in defs_by_name and defs_by_name[r].order < i]
            if candidates:
                item.anchor = max(candidates, key=lambda it: it.order)
    # trailing comments of the file go with the last item
    tail = "".join(lines[prev_end:]).strip("\n")
    if tail.strip() and items:
        items[-1].text = items[-1].text.rstrip("\n") + "\n\n" + tail + "\n"
    return doc, items


@dataclass
class Placement:
    order: list[str]  # modules, lowest first
    items: list[Item]
    docs: dict[str, str]
    unknown: list[str]
    moved_down: list[str]


def place(split: Split, items: list[Item]) -> Placement:
    order = [t.module for t in split.modules]
    docs = {t.module: t.doc for t in split.modules}
    explicit = {n: t.module for t in split.modules for n in t.names}
    patterns = [(re.compile(p), t.module) for t in split.modules for p in t.patterns]
    dynamic = [(re.compile(rx), tmpl, doc) for rx, tmpl, doc in split.dynamic]
    source_rank = order.index(split.source) if split.source in order else len(order)
    unknown: list[str] = []
    defs = [it for it in items if it.kind == "def"]
    for item in defs:
        homes = {explicit[n] for n in item.names if n in explicit}
        if homes:
            item.home, item.explicit = sorted(homes, key=order.index)[0], True
            continue
        name = sorted(item.names)[0]
        for rx, tmpl, doc in dynamic:
            match = rx.match(name)
            if match:
                module = tmpl.format(**match.groupdict())
                if module in MODULE_MOVES.values() or (module not in order and exists(module)):
                    warn(f"split {split.source}: {name} stays in {split.source} ({module} is another module)")
                    module = split.source
                    if module not in order:
                        continue
                if module not in order:
                    order.insert(source_rank, module)
                    docs[module] = doc.format(**match.groupdict())
                    source_rank += 1
                item.home, item.explicit = module, True
                break
        else:
            for rx, module in patterns:
                if rx.search(name):
                    item.home = module
                    break
            else:
                item.home = ""  # decided by its users below
            unknown.append(name)

    def users(item: Item) -> list[Item]:
        return [
            u for u in items
            if u is not item and u.kind in ("def", "stmt") and (u.refs & item.names)
        ]

    def home_of(item: Item) -> str:
        if item.kind == "stmt" and split.register:
            return split.source  # registrations run after the modules they register are imported
        if item.kind == "stmt":
            return item.anchor.home if item.anchor and item.anchor.home else split.default
        return item.home or split.default

    # unknown names: where their users are (lowest), else the default; a pattern's home holds
    by_pattern = {id(it) for it in defs if not it.explicit and it.home}
    for _ in range(50):
        changed = False
        for item in defs:
            if item.explicit or id(item) in by_pattern:
                continue
            homes = [home_of(u) for u in users(item) if u.kind == "stmt" or u.home]
            new = min(homes, key=order.index) if homes else split.default
            if new != item.home:
                item.home, changed = new, True
        if not changed:
            break
    for item in defs:
        item.home = item.home or split.default
    # pull down: a module imports only from modules below it
    moved_down: list[str] = []
    for _ in range(200):
        changed = False
        for item in defs:
            homes = [home_of(u) for u in users(item)]
            if not homes:
                continue
            lowest = min(homes, key=order.index)
            if order.index(lowest) < order.index(item.home):
                if item.explicit:
                    moved_down.append(f"{item.label}: {item.home} -> {lowest} (used there)")
                item.home, changed = lowest, True
        if not changed:
            break
    for item in items:
        if item.kind == "stmt":
            item.home = home_of(item)
    return Placement(order, items, docs, unknown, moved_down)


def prune_imports(text: str) -> str:
    """Drop the imported names a module does not use (keeps __future__, star and noqa imports)."""
    tree = ast.parse(text)
    body = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom)) and not is_type_checking(n)]
    used = used_names(body)
    if any(is_type_checking(n) for n in tree.body):
        used.add("TYPE_CHECKING")
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            used |= {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []

    def rebuild(node: ast.Import | ast.ImportFrom, indent: str) -> str | None:
        line = "".join(lines[node.lineno - 1: node.end_lineno])
        if "noqa" in line and "F401" in line:
            return line  # a deliberate re-export or registration
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__" or any(a.name == "*" for a in node.names):
                return line
            keep = [a for a in node.names if (a.asname or a.name) in used]
            if len(keep) == len(node.names):
                return line
            if not keep:
                return ""
            names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in keep)
            return f"{indent}from {'.' * node.level}{node.module or ''} import {names}\n"
        keep_i = [a for a in node.names if (a.asname or a.name.split(".")[0]) in used]
        if len(keep_i) == len(node.names):
            return line
        if not keep_i:
            return ""
        return f"{indent}import " + ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in keep_i) + "\n"

    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            new = rebuild(node, "")
            if new is not None:
                edits.append((node.lineno, node.end_lineno or node.lineno, new))
        elif is_type_checking(node):
            assert isinstance(node, ast.If)
            inner = []
            for sub in node.body:
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    new = rebuild(sub, " " * sub.col_offset)
                    inner.append(new if new is not None else "")
                else:
                    inner.append("".join(lines[sub.lineno - 1: sub.end_lineno]))
            if not "".join(inner).strip():
                edits.append((node.lineno, node.end_lineno or node.lineno, ""))
            else:
                head = lines[node.lineno - 1]
                edits.append((node.lineno, node.end_lineno or node.lineno, head + "".join(inner)))
    for start, end, new in sorted(edits, reverse=True):
        lines[start - 1: end] = [new]
    result = "".join(lines)
    if result != text:
        return prune_imports(result)  # TYPE_CHECKING may have become unused
    return result


def module_text(doc: str, headers: list[str], cross: dict[str, list[str]], body: list[str]) -> str:
    parts: list[str] = []
    if doc:
        parts.append(doc.rstrip("\n") + "\n")
    # in a new module every import is at the top: an E402 exemption would be an unused noqa
    headers = [re.sub(r"  # noqa: E402\b[^\n]*", "", h) for h in headers]
    future = [h for h in headers if "from __future__" in h]
    guarded = [h for h in headers if "TYPE_CHECKING:" in h]
    rest = [h for h in headers if "from __future__" not in h and h not in guarded]
    imports = "".join(h if h.endswith("\n") else h + "\n" for h in future)
    imports += ("\n" if future else "") + "".join(h if h.endswith("\n") else h + "\n" for h in rest)
    for module in sorted(cross):
        imports += f"from {module} import {', '.join(sorted(set(cross[module])))}\n"
    imports += "".join("\n" + h.strip("\n") + "\n" for h in guarded)
    parts.append(imports)
    parts.append("\n\n".join(b.strip("\n") + "\n" for b in body))
    return "\n".join(p for p in parts if p.strip()) + ("" if body else "")


NAME_HOMES: dict[tuple[str, str], str] = {}  # (old module, name) -> module that defines it now
IMPORT_USERS: dict[tuple[str, str], set[str]] = {}  # (old module, imported name) -> modules using it
IMPORT_ORIGIN: dict[tuple[str, str], str] = {}  # (old module, imported name) -> where it was imported from
DISSOLVED: set[str] = set()
SPLIT_SOURCES: set[str] = set()


def import_origins(module: str, items: list[Item]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        if item.kind != "header":
            continue
        try:
            tree = ast.parse(item.text.strip() + "\n") if not item.text.startswith((" ", "\t")) else None
        except SyntaxError:
            tree = None
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    found[a.asname or a.name] = node.module
    return found


def do_split(split: Split) -> bool:
    """Apply one split; False when it could not be applied (nothing is written then)."""
    SPLIT_SOURCES.add(split.source)
    src = mod_path(split.source)
    if src is None:
        if any(exists(t.module) for t in split.modules):
            if split.source not in [t.module for t in split.modules]:
                DISSOLVED.add(split.source)
            record_existing(split)
            return True  # done before
        warn(f"split {split.source}: the module does not exist")
        return True
    text = src.read_text(encoding="utf-8")
    doc, items = parse_items(text)
    placement = place(split, items)
    origins = import_origins(split.source, items)
    defs = [it for it in items if it.kind == "def"]
    staying = split.source in placement.order
    if not staying:
        DISSOLVED.add(split.source)
    movers = [it for it in defs if it.home != split.source]
    if not movers and (not split.package or src.name == "__init__.py"):
        record_existing(split)
        return True
    # module bodies
    headers = [it.text for it in items if it.kind == "header"]
    replicas = [it for it in items if it.kind == "replicate"]
    all_item = next((it for it in items if it.kind == "all"), None)
    texts: dict[str, str] = {}
    home_of_name = {n: it.home for it in defs for n in it.names}
    for module in placement.order:
        mine = [it for it in items if it.kind in ("def", "stmt") and it.home == module]
        if module != split.source and not mine:
            continue
        if module == split.source and not mine and not staying:
            continue
        refs = set().union(*(it.refs for it in mine)) if mine else set()
        reps = [r for r in replicas if r.names & refs]
        cross: dict[str, list[str]] = {}
        for name in sorted(refs):
            home = home_of_name.get(name)
            if home and home != module:
                if placement.order.index(home) > placement.order.index(module):
                    warn(f"split {split.source}: {module} would import {name} from {home} above it")
                    return False
                cross.setdefault(home, []).append(name)
        body = [r.text for r in reps] + [it.text for it in sorted(mine, key=lambda it: it.order)]
        module_headers = headers
        if split.register and module == split.source:
            first = {m: min((it.order for it in items if it.home == m and it.kind == "def"), default=10**6)
                     for m in placement.order if m.startswith(module + ".") and m != module + ".base"}
            subs = [m.rsplit(".", 1)[1] for m in sorted(first, key=lambda m: first[m])]
            if subs:
                # separate lines, kept in this order: the order of registration is that of `--help`
                cross_line = ("# isort: off\n# each module registers its commands on import, in the order of `--help`\n"
                              + "".join(f"from {module} import {sub}  # noqa: F401\n" for sub in subs)
                              + "# isort: on\n")
                module_headers = [*module_headers, cross_line]
        if all_item is not None:
            exported = [n for n in sorted(all_item.refs)
                        if home_of_name.get(n, split.default) == module]
            if exported:
                body.append("__all__ = [" + ", ".join(f'"{n}"' for n in exported) + "]\n")
        module_doc = doc if module == split.source else placement.docs.get(module, "")
        if not module_doc and module == split.default and split.source not in placement.order:
            module_doc = doc  # the module's own docstring goes where the bulk of it goes
        if not module_doc and module != split.source:
            module_doc = f'"""{split.why[0].upper() + split.why[1:]} (from ``{split.source}``)."""'
        if module == split.source and not staying:
            continue
        existing = mod_path(module)
        if existing is not None and module != split.source:
            texts[module] = merge_into(existing.read_text(encoding="utf-8"), module_headers, cross, body)
        else:
            texts[module] = module_text(module_doc, module_headers, cross, body)
    # write
    for module, body_text in texts.items():
        try:
            pruned = prune_imports(body_text)
            compile(pruned, module, "exec")
        except SyntaxError as exc:
            warn(f"split {split.source}: {module} would not compile ({exc}); split skipped")
            return False
        texts[module] = pruned
    for module, body_text in texts.items():
        is_source = module == split.source
        path = target_file(module, package=split.package and is_source)
        if is_source and split.package and src.name != "__init__.py":
            path = ROOT.joinpath(*module.split(".")) / "__init__.py"
        ensure_package(module if not (is_source and split.package) else module + ".x")
        write(path, body_text)
    for item in defs:
        for n in item.names:
            NAME_HOMES[(split.source, n)] = item.home
    if (not staying) or (split.package and src.name != "__init__.py"):
        remove(src)
    # record where imported names went (for patch targets)
    for name, origin in origins.items():
        IMPORT_ORIGIN[(split.source, name)] = origin
        users_ = {m for m, t in texts.items() if re.search(rf"\b{re.escape(name)}\b", t.split('"""', 2)[-1])}
        IMPORT_USERS[(split.source, name)] = users_
    moved = sorted({it.label for it in movers})
    SUMMARY.append(
        f"split  {split.source} -> {', '.join(m for m in placement.order if m in texts)} "
        f"({len(moved)} definitions moved)"
    )
    if placement.unknown:
        where = {n: home_of_name.get(n, "?") for n in placement.unknown}
        warn(f"split {split.source}: names not in the tables, placed by rule: "
             + ", ".join(f"{n} -> {m}" for n, m in sorted(where.items())))
    for line in placement.moved_down:
        warn(f"split {split.source}: pulled down {line}")
    return True


def merge_into(existing: str, headers: list[str], cross: dict[str, list[str]], body: list[str]) -> str:
    """Add imports and definitions to a module that exists already."""
    tree = ast.parse(existing)
    lines = existing.splitlines(keepends=True)
    last_import = 0
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or is_type_checking(node):
            last_import = node.end_lineno or 0
        elif last_import:
            break
    if not last_import:
        first = tree.body[0] if tree.body else None
        is_doc = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant)
        last_import = (first.end_lineno or 0) if (first is not None and is_doc) else 0
    extra = [h for h in headers if h.strip() not in existing and "from __future__" not in h]
    extra += [f"from {m} import {', '.join(sorted(set(ns)))}\n" for m, ns in sorted(cross.items())]
    head = "".join(lines[:last_import])
    tail = "".join(lines[last_import:])
    new_defs = [b for b in body if b.strip() and b.strip() not in existing]
    return head + ("\n" if head and not head.endswith("\n") else "") + "".join(
        h if h.endswith("\n") else h + "\n" for h in extra
    ) + tail.rstrip("\n") + "\n" + "".join("\n\n" + b.strip("\n") + "\n" for b in new_defs)


def record_existing(split: Split) -> None:
    """A split already applied: learn where its names are from the modules as they are now."""
    for target in split.modules:
        path = mod_path(target.module)
        if path is None:
            continue
        _, items = parse_items(path.read_text(encoding="utf-8"))
        for item in items:
            if item.kind == "def":
                for n in item.names:
                    NAME_HOMES.setdefault((split.source, n), target.module)


# ============================================================================ rewriting imports


def split_home(module: str, name: str) -> str | None:
    home = NAME_HOMES.get((module, name))
    if home and home != module:
        return home
    if module in DISSOLVED and (module, name) not in NAME_HOMES:
        return IMPORT_ORIGIN.get((module, name))
    return None


def new_module(module: str) -> str:
    """The module name after the moves (longest moved prefix)."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in MODULE_MOVES:
            return ".".join([MODULE_MOVES[prefix], *parts[i:]])
    return module


def resolve(node: ast.ImportFrom, current: str, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    anchor = current.split(".")
    drop = node.level - (1 if is_pkg else 0)
    if drop:
        anchor = anchor[:-drop]
    return ".".join([*anchor, node.module]) if node.module else ".".join(anchor)


def render_from(module: str, names: list[tuple[str, str | None]], indent: str) -> str:
    body = ", ".join(n + (f" as {a}" if a and a != n else "") for n, a in names)
    return f"{indent}from {module} import {body}\n"


def rewrite_imports(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(text)
    except SyntaxError:
        warn(f"{path.relative_to(ROOT)}: does not parse; imports not rewritten")
        return
    current = path_module(path) if path.is_relative_to(ROOT) else ""
    is_pkg = path.name == "__init__.py"
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, int, int, str]] = []  # (line, col, end_line, end_col, text)
    aliases: dict[str, str] = {}  # local name -> module it is bound to
    added: list[str] = []
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = resolve(node, current, is_pkg)
            if not module.startswith(("worker", "bench")) or module == "__future__":
                continue
            indent = " " * node.col_offset
            groups: list[tuple[str, list[tuple[str, str | None]]]] = []
            changed = False
            for alias in node.names:
                local = alias.asname or alias.name
                full = f"{module}.{alias.name}"
                target_mod, target_name = module, alias.name
                if new_module(full) != full and (mod_path(new_module(full)) or not mod_path(full)):
                    moved = new_module(full)
                    target_mod, target_name = moved.rsplit(".", 1)
                    aliases[local] = moved
                    changed = True
                elif new_module(module) != module:
                    target_mod = new_module(module)
                    changed = True
                    home = split_home(target_mod, alias.name)
                    if home:
                        target_mod = home
                elif split_home(module, alias.name):
                    target_mod = split_home(module, alias.name) or module
                    changed = True
                if full in SPLIT_SOURCES or new_module(full) in SPLIT_SOURCES:
                    aliases[local] = new_module(full)
                keep_as = local if local != target_name else None
                if groups and groups[-1][0] == target_mod:
                    groups[-1][1].append((target_name, keep_as))
                else:
                    groups.append((target_mod, [(target_name, keep_as)]))
            if changed:
                new = ("\n" + indent).join(render_from(m, ns, "").rstrip("\n") for m, ns in groups)
                edits.append((node.lineno, node.col_offset, node.end_lineno or node.lineno,
                              node.end_col_offset or 0, new))
        elif isinstance(node, ast.Import):
            names = []
            changed = False
            for alias in node.names:
                moved = new_module(alias.name)
                if moved != alias.name:
                    changed = True
                names.append(moved + (f" as {alias.asname}" if alias.asname else ""))
                if alias.asname and (alias.name in SPLIT_SOURCES or moved in SPLIT_SOURCES):
                    aliases[alias.asname] = moved
            if changed:
                edits.append((node.lineno, node.col_offset, node.end_lineno or node.lineno,
                              node.end_col_offset or 0, "import " + ", ".join(names)))
    # attribute uses of module aliases: x.name where name moved out of x's module
    alias_for: dict[str, str] = {}

    def alias_of(home: str) -> str:
        if home not in alias_for:
            last = home.rsplit(".", 1)[1]
            name = last if last not in bound else f"{last}_module"
            alias_for[home] = name
            parent = home.rsplit(".", 1)[0]
            added.append(f"from {parent} import {last}" + (f" as {name}" if name != last else "") + "\n")
        return alias_for[home]

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            home = split_home(aliases[node.value.id], node.attr)
            if home:
                edits.append((node.value.lineno, node.value.col_offset, node.value.end_lineno or 0,
                              node.value.end_col_offset or 0, alias_of(home)))
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)) and len(node.args) >= 2:
            fname = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            first, second = node.args[0], node.args[1]
            if fname in ("setattr", "object", "delattr") and isinstance(first, ast.Name) and first.id in aliases \
                    and isinstance(second, ast.Constant) and isinstance(second.value, str):
                home = split_home(aliases[first.id], second.value) or patch_home(aliases[first.id], second.value)
                if home:
                    edits.append((first.lineno, first.col_offset, first.end_lineno or 0,
                                  first.end_col_offset or 0, alias_of(home)))
    if not edits:
        return
    for line, col, end_line, end_col, new in sorted(edits, reverse=True):
        start = sum(len(x) for x in lines[: line - 1]) + len(lines[line - 1].encode()[:col].decode())
        stop = sum(len(x) for x in lines[: end_line - 1]) + len(lines[end_line - 1].encode()[:end_col].decode())
        joined = "".join(lines)
        joined = joined[:start] + new + joined[stop:]
        lines = joined.splitlines(keepends=True)
    result = "".join(lines)
    if added:
        result = insert_imports(result, added)
    write(path, result)


def patch_home(module: str, name: str) -> str | None:
    """Where a name a split module had imported is now used (patch targets follow their users)."""
    users_ = IMPORT_USERS.get((module, name))
    if users_ and len(users_) == 1:
        (only,) = users_
        return only if only != module else None
    if users_ and len(users_) > 1:
        warn(f"patch target {module}.{name}: the name is now used in {sorted(users_)}; patch each")
    return None


def insert_imports(text: str, imports: list[str]) -> str:
    tree = ast.parse(text)
    last = 0
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            last = node.end_lineno or 0
        elif last:
            break
    lines = text.splitlines(keepends=True)
    return "".join(lines[:last]) + "".join(imports) + "".join(lines[last:])


# ---------------------------------------------------------------------------- names in text

DOTTED = re.compile(r"(?<![\w.])(?:worker|bench)(?:\.[A-Za-z_]\w*)+")
FILEPATH = re.compile(r"(?<![\w/])worker(?:/[A-Za-z_]\w*)+\.py\b")


def rewrite_dotted(match: re.Match[str]) -> str:
    name = match.group(0)
    parts = name.split(".")
    for i in range(len(parts), 1, -1):
        prefix = ".".join(parts[:i])
        moved = new_module(prefix)
        rest = parts[i:]
        if moved != prefix:
            prefix = moved
        if rest:
            home = split_home(prefix, rest[0]) or patch_home_quiet(prefix, rest[0])
            if home:
                return ".".join([home, *rest])
        if moved != ".".join(parts[:i]):
            return ".".join([prefix, *rest])
        if prefix in DISSOLVED and not rest:
            default = next((s.default for s in SPLITS if s.source == prefix), prefix)
            return default
    return name


def patch_home_quiet(module: str, name: str) -> str | None:
    users_ = IMPORT_USERS.get((module, name))
    if users_ and len(users_) == 1:
        (only,) = users_
        return only if only != module else None
    return None


def rewrite_path(match: re.Match[str]) -> str:
    text = match.group(0)
    module = text[:-3].replace("/", ".")
    moved = new_module(module)
    if moved != module:
        return moved.replace(".", "/") + ".py"
    if module in DISSOLVED:
        default = next((s.default for s in SPLITS if s.source == module), module)
        return default.replace(".", "/") + ".py"
    for split in SPLITS:
        if split.source == module and split.package:
            return module.replace(".", "/") + "/"
    return text


def rewrite_text(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    new = DOTTED.sub(rewrite_dotted, text)
    new = FILEPATH.sub(rewrite_path, new)
    if new != text:
        write(path, new)


def text_files() -> list[Path]:
    files: list[Path] = []
    for folder in ("worker", "tests", "bench", "docs", "helm"):
        base = ROOT / folder
        if base.is_dir():
            for p in base.rglob("*"):
                if p.is_file() and p.suffix in (".py", ".md", ".yaml", ".yml", ".txt", ".tpl", ".toml", ".cfg", ".ini"):
                    if "__pycache__" not in p.parts and "stac_schemas" not in p.parts:
                        files.append(p)
    for name in ("README.md", "CONTRIBUTING.md", "Makefile", "Dockerfile", "pyproject.toml"):
        if (ROOT / name).exists():
            files.append(ROOT / name)
    return files


def py_files() -> list[Path]:
    return [p for p in text_files() if p.suffix == ".py"]


# ============================================================================ contracts and tooling


def top_level_units() -> list[str]:
    units = []
    for p in sorted((ROOT / "worker").iterdir()):
        if p.name.startswith(("_", ".")):
            continue
        if p.is_dir() and (p / "__init__.py").exists():
            units.append(f"worker.{p.name}")
        elif p.suffix == ".py":
            units.append(f"worker.{p.stem}")
    return units


def worker_imports(unit: str) -> set[str]:
    """The top-level units of worker that a unit imports."""
    path = mod_path(unit)
    if path is None:
        return set()
    files = [path] if path.name != "__init__.py" else list(path.parent.rglob("*.py"))
    found: set[str] = set()
    for f in files:
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                parts = n.split(".")
                if parts[0] == "worker" and len(parts) > 1 and exists(".".join(parts[:2])):
                    found.add(".".join(parts[:2]))
    found.discard(unit)
    return found


def contracts() -> tuple[str, list[str]]:
    """The [tool.importlinter] block for the code as it is, and the units left out of the rings."""
    units = top_level_units()
    known = {m for ring in RINGS for m in ring} | set(GROUND) | {"worker.simulators"}
    ground = [g for g in GROUND if g in units]
    left_out: list[str] = []
    for unit in units:
        if unit in known:
            continue
        if worker_imports(unit) <= set(ground):
            ground.append(unit)
            warn(f"contracts: {unit} is not in the tables; it imports only the ground, so it joins it")
        else:
            left_out.append(unit)
            warn(f"contracts: {unit} is not in the tables and imports {sorted(worker_imports(unit))}: "
                 "left out of the layers (add it to RINGS)")
    layers: list[str] = []
    for ring in RINGS:
        members = [m for m in ring if m == "bench" and (ROOT / "bench/__init__.py").exists() or m in units]
        if members:
            layers.append(" | ".join(members))
    layers.append(" : ".join(ground))
    adapters = [a for a in ADAPTERS if a in units]
    providers = sorted(
        f"worker.providers.{p.name}" for p in (ROOT / "worker/providers").iterdir()
        if p.is_dir() and (p / "__init__.py").exists()
    )
    inner = [m for m in ("worker.domain", "worker.events") if m in units]
    outer_of_sims = [m for m in [*ADAPTERS, "worker.runtime", "worker.domain", "worker.events", "worker.app"]
                     if m in units]
    roots = ["worker"] + (["bench"] if (ROOT / "bench/__init__.py").exists() else [])

    def toml_list(values: list[str], indent: str = "  ") -> str:
        return "[\n" + "".join(f'{indent}"{v}",\n' for v in values) + "]"

    block = [
        "[tool.importlinter]",
        f"root_packages = {toml_list(roots)}",
        "",
        "[[tool.importlinter.contracts]]",
        'name = "Rings: every arrow points inward (entry points > app > runtime > adapters > domain > events > ground)"',
        'type = "layers"',
        f"layers = {toml_list(layers)}",
        "",
        "[[tool.importlinter.contracts]]",
        'name = "The domain and the contract never import an adapter, the runtime or an entry point"',
        'type = "forbidden"',
        f"source_modules = {toml_list(inner)}",
        f"forbidden_modules = {toml_list([*adapters, *[m for m in ['worker.runtime', *ENTRY, 'worker.simulators'] if m in units]])}",
        "",
        "[[tool.importlinter.contracts]]",
        'name = "Provider adapters are independent of each other"',
        'type = "independence"',
        f"modules = {toml_list(providers)}",
        "",
        "[[tool.importlinter.contracts]]",
        'name = "Simulators import only the ground and the contract"',
        'type = "forbidden"',
        'source_modules = ["worker.simulators"]',
        f"forbidden_modules = {toml_list([m for m in [*ADAPTERS, 'worker.runtime', 'worker.domain', *ENTRY] if m in units])}",
        "",
        "[[tool.importlinter.contracts]]",
        'name = "Only entry points start simulators"',
        'type = "forbidden"',
        f"source_modules = {toml_list(outer_of_sims)}",
        'forbidden_modules = ["worker.simulators"]',
    ]
    return "\n".join(block) + "\n", left_out


def update_pyproject() -> None:
    path = ROOT / "pyproject.toml"
    text = path.read_text(encoding="utf-8")
    if "import-linter" not in text:
        text = re.sub(r'(\n  "mypy[^"\n]*",\n)', r'\1  "import-linter>=2.1",  # lint-imports: the rings of docs/architecture.md\n',
                      text, count=1)
        if "import-linter" not in text:
            warn("pyproject: could not add import-linter to the dev dependencies (no mypy line)")
    block, _ = contracts()
    pattern = re.compile(r"\n\[tool\.importlinter\]\n.*?(?=\n\[(?!\[tool\.importlinter)|\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: "\n" + block.rstrip("\n"), text)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    if not text.endswith("\n"):
        text += "\n"
    write(path, text)


def update_makefile() -> None:
    path = ROOT / "Makefile"
    text = path.read_text(encoding="utf-8")
    if "lint-imports" in text:
        return
    new = re.sub(r"(\ncheck:[^\n]*\n(?:\t[^\n]*\n)*)", lambda m: m.group(1) + "\t$(VENV)/bin/lint-imports\n", text,
                 count=1)
    if new == text:
        warn("Makefile: no `check:` target found; add `lint-imports` to it by hand")
    write(path, new)


CONTRACT_TEST = r'''"""The import contracts of docs/architecture.md hold (import-linter, [tool.importlinter] in pyproject.toml).

`make check` runs `lint-imports` too; this test puts the same check in `make test`, which CI runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.fail("lint-imports is missing: install the dev dependencies (pip install -e '.[dev]')")
    return subprocess.run(
        [str(lint), "--no-cache", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=240
    )


def test_the_rings_hold() -> None:
    done = lint_imports()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " 0 broken." in done.stdout


def test_an_arrow_pointing_outward_is_reported(tmp_path: Path) -> None:
    # The runtime does import the domain: a contract forbidding it must fail, naming the import.
    config = tmp_path / "contracts.ini"
    config.write_text(
        "[importlinter]\nroot_package = worker\n\n"
        "[importlinter:contract:outward]\nname = outward\ntype = forbidden\n"
        "source_modules = worker.runtime\nforbidden_modules = worker.domain\n",
        encoding="utf-8",
    )
    done = lint_imports("--config", str(config))
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "BROKEN" in done.stdout
    assert "worker.runtime." in done.stdout
'''


def write_contract_test() -> None:
    path = ROOT / "tests/unit/test_import_contracts.py"
    if not path.exists():
        write(path, CONTRACT_TEST)


def tool(name: str) -> str | None:
    local = ROOT / ".venv/bin" / name
    return str(local) if local.exists() else shutil.which(name)


def tidy() -> None:
    files = sorted(str(p) for p in CHANGED if p.suffix == ".py" and p.exists())
    ruff = tool("ruff")
    if not files or ruff is None or DRY:
        return
    subprocess.run([ruff, "check", "--fix", "--select", "I,F401", "--quiet", *files], check=False)
    subprocess.run([ruff, "format", "--quiet", *files], check=False)


def check_contracts() -> int:
    lint = tool("lint-imports")
    venv_python = ROOT / ".venv/bin/python"
    if lint is None and venv_python.exists():  # the dev dependency was just added to pyproject
        subprocess.run([str(venv_python), "-m", "pip", "install", "--quiet", "import-linter>=2.1"], check=False)
        lint = tool("lint-imports")
    if lint is None:
        warn("lint-imports is not installed (pip install -e '.[dev]'): contracts not checked")
        return 0
    done = subprocess.run([lint, "--no-cache"], capture_output=True, text=True, check=False)
    print(done.stdout[-6000:])
    if done.returncode:
        print(done.stderr[-3000:], file=sys.stderr)
    return 1 if done.returncode else 0


def compile_all() -> bool:
    ok = True
    for path in (ROOT / "worker").rglob("*.py"):
        try:
            compile(path.read_text(encoding="utf-8"), str(path), "exec")
        except SyntaxError as exc:
            warn(f"{path.relative_to(ROOT)} does not compile: {exc}")
            ok = False
    return ok


# ============================================================================ main


def main(argv: list[str]) -> int:
    global DRY
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="change nothing; print what would change")
    parser.add_argument("--no-check", action="store_true", help="skip ruff and lint-imports at the end")
    args = parser.parse_args(argv)
    DRY = args.dry_run
    if not (ROOT / "worker/__init__.py").exists():
        print("run from the repository root (worker/ not found)", file=sys.stderr)
        return 2
    do_moves()
    failed = [s.source for s in SPLITS if not do_split(s)]
    if DRY:
        for line in SUMMARY:
            print(line)
        print(f"(dry run) {len(CHANGED)} files would change by the moves and splits")
        return 0
    for path in py_files():
        rewrite_imports(path)
    before = dict(MODULE_MOVES)
    auto_moves()  # on the imports as they are now
    if MODULE_MOVES != before:
        for path in py_files():
            rewrite_imports(path)
    for path in text_files():
        rewrite_text(path)
    update_pyproject()
    update_makefile()
    write_contract_test()
    ok = compile_all()
    if not args.no_check:
        tidy()
    print("== restructure summary")
    for line in SUMMARY or ["nothing to move: the code is already in its rings"]:
        print("  " + line)
    print(f"  {len(CHANGED)} files changed")
    code = 0
    if not args.no_check:
        code = check_contracts()
    for line in WARNINGS:
        print("warning: " + line)
    if failed or not ok:
        print("not applied: " + ", ".join(failed), file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
