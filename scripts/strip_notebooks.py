"""Strip outputs, execution counts and run-time metadata from notebooks (they are committed clean).

Usage: python scripts/strip_notebooks.py [paths...]   (folders are searched for *.ipynb)
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

KEEP_METADATA = {"kernelspec", "language_info", "jupytext"}


def strip(path: Path) -> bool:
    """Strip one notebook in place; return whether it changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_METADATA}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in ("tags",)}
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after + ("" if after.endswith("\n") else "\n"))
        return True
    return False


def main(args: list[str]) -> None:
    paths = []
    for a in args or ["chapters", "book"]:
        p = Path(a)
        paths += sorted(p.rglob("*.ipynb")) if p.is_dir() else [p]
    for p in paths:
        if ".ipynb_checkpoints" not in p.parts and strip(p):
            print(f"stripped {p}")


if __name__ == "__main__":
    main(sys.argv[1:])
