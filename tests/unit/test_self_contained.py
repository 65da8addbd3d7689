"""The repository is self-contained: no code, test, benchmark or script reaches for files beside the
checkout (a sibling ``shared/`` folder, by a relative or an absolute path).

A clean clone of this repository alone must pass ``make test``; a file read from outside works on a
developer's machine and fails everywhere else. Markdown is exempt: docs may name where a vendored file
came from.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".git", ".venv", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build"}
# Assembled from parts so this file does not match itself.
SHARED = "sha" + "red"
OUTSIDE = re.compile(
    "|".join(
        [
            rf"\.\./{SHARED}\b",  # a relative path up to the sibling folder
            rf"/work/{SHARED}\b",  # its absolute path
            rf"/\s*[\"']{SHARED}[\"']",  # pathlib: a parent joined with the folder's name
            rf"[\"']{SHARED}[\"']\s*/",  # pathlib: the folder's name joined with more
            rf"[\"']\.\./{SHARED}",  # os.path.join with the relative path
        ]
    )
)


def project_files() -> list[Path]:
    """Every file of the project: git's tracked and untracked-but-not-ignored files, else a walk."""
    git = shutil.which("git")
    if git is not None and (ROOT / ".git").exists():
        listed = subprocess.run(
            [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return [ROOT / name for name in listed.split("\0") if name and (ROOT / name).is_file()]
    return [
        path
        for path in ROOT.rglob("*")
        if path.is_file() and not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts)
    ]


def offending_lines(files: list[Path], root: Path) -> list[str]:
    """``path:line: text`` for each line outside Markdown that points beside the checkout."""
    found: list[str] = []
    for path in files:
        if path.suffix == ".md" or path.name == "package-lock.json":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files cannot name a path we would read
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_no_file_reads_beside_the_checkout() -> None:
    files = project_files()
    assert len(files) > 50, "the file listing found too little to be the project"
    offenders = offending_lines(files, ROOT)
    assert not offenders, "files that reach outside the repository:\n" + "\n".join(offenders)


def test_the_check_catches_each_way_of_reaching_outside(tmp_path: Path) -> None:
    """The patterns catch the forms a read of the sibling folder takes (guards the check itself)."""
    samples = {
        "a.py": f'CRD = ROOT.parent / "{SHARED}" / "vendor"\n',
        "b.py": f"open('../{SHARED}/vendor/x.json')\n",
        "c.sh": f"cat /work/{SHARED}/reference/up42-api.md\n",
        "d.py": f'os.path.join("../{SHARED}", "x")\n',
        "e.md": f"copied from ../{SHARED}/vendor\n",  # Markdown is exempt
        "f.py": "SHARED_STATE = 'the shared producer'\n",  # an ordinary word is fine
    }
    for name, text in samples.items():
        (tmp_path / name).write_text(text)
    offenders = offending_lines(sorted(tmp_path.iterdir()), tmp_path)
    assert sorted(line.split(":")[0] for line in offenders) == ["a.py", "b.py", "c.sh", "d.py"]
