"""Figures, the printed table and docs/performance.md."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Figure:
    """One measured figure, with what it is compared with and the target it answers to."""

    section: str
    name: str
    value: float
    unit: str
    compared: str = ""  # the reference figure, measured in the same run
    ratio: float | None = None
    target: str = ""
    met: bool | None = None

    def cells(self) -> list[str]:
        verdict = {True: "met", False: "NOT met", None: ""}[self.met]
        ratio = "" if self.ratio is None else f"{self.ratio:.3g}"
        return [
            self.section,
            self.name,
            f"{_fmt(self.value)} {self.unit}",
            self.compared,
            ratio,
            self.target,
            verdict,
        ]


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


HEADER = ["section", "figure", "value", "compared with", "ratio", "target", "verdict"]


def text_table(figures: list[Figure]) -> str:
    rows = [HEADER] + [f.cells() for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    rows = [HEADER, ["---"] * len(HEADER)] + [f.cells() for f in figures]
    return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows)


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)  # section -> measurement notes
    profiles: dict[str, str] = field(default_factory=dict)  # title -> profile excerpt

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def measured_block(report: Report, args: str, seconds: float) -> str:
    """The generated part of docs/performance.md (between the bench markers)."""
    lines = [
        BEGIN,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({_cpu_count()} CPUs, Python {platform.python_version()}) by `python -m bench{args}` "
        f"in {seconds:.0f} s.",
        "",
        markdown_table(report.figures),
        "",
    ]
    for section, notes in report.notes.items():
        lines += [f"**{section}.**", ""] + [f"- {n}" for n in notes] + [""]
    for title, excerpt in report.profiles.items():
        lines += [
            f"<details><summary>Profile: {title}</summary>",
            "",
            "```",
            excerpt.rstrip(),
            "```",
            "",
            "</details>",
            "",
        ]
    lines.append(END)
    return "\n".join(lines)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0))


def write_document(path: Path, block: str) -> None:
    """Replace the measured block of ``path`` (keeping the analysis around it), or create it."""
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            path.write_text(head + block + tail)
            return
        path.write_text(text.rstrip() + "\n\n" + block + "\n")
        return
    path.write_text("# Performance\n\n" + block + "\n")
