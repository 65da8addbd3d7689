"""Print the package -> package import graph of `worker` (read with ast, no import of the code).

Usage: python tools/import_graph.py [--files] [--level N]

A "package" is the first sub-package (or top-level module) under `worker`: `worker.kafka.intake`
counts as `kafka`, `worker/config.py` as `config`. Each edge is printed once with the number of
import statements behind it; `--files` lists the module -> module edges instead. Imports under
`if TYPE_CHECKING:` count too (mypy and import-linter read them).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, current: str, is_package: bool) -> list[str]:
    """Every absolute module name an import statement of `tree` names (relative ones resolved)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = current.split(".")
                drop = node.level - (1 if is_package else 0)
                anchor = anchor[: len(anchor) - drop] if drop else anchor
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.append(base)
            found.extend(f"{base}.{alias.name}" for alias in node.names)
    return found


def group(name: str, level: int) -> str | None:
    parts = name.split(".")
    if parts[0] != "worker" or len(parts) < 2:
        return None
    return ".".join(parts[1 : 1 + level])


def edges(root: Path, level: int, files: bool) -> Counter[tuple[str, str]]:
    known = {module_name(p, root) for p in (root / "worker").rglob("*.py")}
    counted: Counter[tuple[str, str]] = Counter()
    for path in sorted((root / "worker").rglob("*.py")):
        current = module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = set()
        for name in imported(tree, current, path.name == "__init__.py"):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                targets.add(name)
        source = current if files else group(current, level)
        for target in targets:
            dest = target if files else group(target, level)
            if source and dest and source != dest:
                counted[(source, dest)] += 1
    return counted


def cycles(counted: Counter[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for (a, b) in counted if a < b and (b, a) in counted)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", action="store_true", help="module -> module edges")
    parser.add_argument("--level", type=int, default=1, help="package depth under worker")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    counted = edges(args.root, args.level, args.files)
    width = max((len(a) for a, _ in counted), default=0)
    for (source, dest), count in sorted(counted.items()):
        print(f"{source:<{width}} -> {dest}  ({count})")
    for a, b in cycles(counted):
        print(f"CYCLE {a} <-> {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
