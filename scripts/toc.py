"""Reading the book's table of contents, shared by the runtime benchmark and the book's tests."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_entries(root: Path = ROOT) -> list[str]:
    """Every file entry of ``_toc.yml`` (without extension), the root page first, in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found = [toc["root"]]

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc.get("parts", toc.get("chapters", [])))
    return found


def resolve(entry: str, root: Path = ROOT) -> Path | None:
    """The file a toc entry names: ``entry.ipynb`` or ``entry.md``, or None if neither exists."""
    for ext in (".ipynb", ".md"):
        if (root / (entry + ext)).exists():
            return root / (entry + ext)
    return None
