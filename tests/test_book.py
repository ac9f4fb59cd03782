"""The book itself: notebooks committed clean, table of contents in step with the files, a strict
build of the structure (toc, cross-references, citations) and Colab links that point at real files."""
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mmcourse.checks import MARKER  # noqa: E402
from scripts.toc import resolve, toc_entries  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
NOTEBOOKS = sorted(p for d in ("chapters", "book") for p in (ROOT / d).rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)


def test_there_are_notebooks():
    assert any("chapters" in p.parts for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {k} has outputs: run `make strip`"
            assert cell.execution_count is None, f"cell {k} has an execution count: run `make strip`"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if "chapters" in p.parts],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_anatomy(path):
    """Title with its section number, a hidden Colab-only setup cell, goals, summary, exercises,
    references, and hidden check cells."""
    nb = nbformat.read(path, as_version=4)
    number = path.name.split("-")[0] + "." + path.name.split("-")[1]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {number} ")
    setup = nb.cells[1]
    assert setup.cell_type == "code" and "hide-cell" in setup.metadata.get("tags", [])
    assert 'if "google.colab" in sys.modules:' in setup.source
    assert CONFIG["repository"]["url"] in setup.source, "the Colab install must use the repository of _config.yml"
    assert "install" in setup.source and "torch" not in setup.source.split("install", 1)[1]
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for heading in ("## Learning goals", "## Summary", "## Exercises", "## References"):
        assert heading in text, f"missing {heading!r}"
    assert "```{exercise}" in text or ":::{exercise}" in text
    assert "```{solution}" in text or ":::{solution}" in text or "````{solution}" in text
    checks = [c for c in nb.cells if c.cell_type == "code" and "remove-cell" in c.metadata.get("tags", [])]
    assert checks and all("assert" in c.source for c in checks)
    # the marker makes mmcourse.checks report a failed claim to a reader instead of raising
    assert all(c.source.startswith(MARKER) for c in checks), "a check cell must start with MARKER"
    assert 15 <= len(nb.cells) <= 60


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_brings_tensors_to_the_cpu_before_numpy(path):
    """On a GPU a tensor's ``.numpy()`` fails: every call goes through ``.cpu()`` first."""
    nb = nbformat.read(path, as_version=4)
    bad = [line.strip() for c in nb.cells if c.cell_type == "code"
           for line in c.source.splitlines() if re.search(r"(?<!\.cpu\(\))\.numpy\(\)", line)]
    assert not bad, bad


def test_every_notebook_is_in_the_toc_and_every_toc_entry_exists():
    entries = toc_entries()
    missing = [e for e in entries if resolve(e) is None]
    assert not missing, f"toc entries without a file: {missing}"
    listed = {resolve(e) for e in entries}
    unlisted = [str(p.relative_to(ROOT)) for p in NOTEBOOKS if p not in listed]
    assert not unlisted, f"notebooks missing from _toc.yml: {unlisted}"


@pytest.fixture(scope="module")
def structure_build(tmp_path_factory):
    """Build the book without executing notebooks, with warnings as errors."""
    tmp = tmp_path_factory.mktemp("book")
    config = dict(CONFIG)
    config["execute"] = dict(CONFIG["execute"], execute_notebooks="off")
    cfg = tmp / "_config.yml"
    cfg.write_text(yaml.safe_dump(config))
    jb = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run([str(jb), "build", str(ROOT), "--config", str(cfg), "--path-output", str(tmp),
                             "--builder", "html", "-W", "--keep-going", "--all"],
                            capture_output=True, text=True, timeout=900)
    return result, tmp / "_build" / "html"


def test_book_structure_builds_without_warnings(structure_build):
    result, html = structure_build
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (html / "index.html").exists()


def test_colab_links_point_at_files_in_the_repository(structure_build):
    result, html = structure_build
    assert result.returncode == 0
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    branch = CONFIG["repository"]["branch"]
    pattern = re.compile(r"https://colab\.research\.google\.com/github/" + re.escape(repo) + r"/blob/"
                         + re.escape(branch) + r"/([^\"'<> ]+\.ipynb)")
    links = {m for page in html.rglob("*.html") for m in pattern.findall(page.read_text(errors="ignore"))}
    expected = {str(p.relative_to(ROOT)) for p in NOTEBOOKS}
    assert links, "no Colab launch links in the built book"
    assert {link for link in links if not (ROOT / link).exists()} == set()
    assert expected <= links, f"notebook pages without a Colab button: {expected - links}"
