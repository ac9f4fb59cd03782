"""Run every notebook with 1, 2, 3 and 4 threads and record every check it makes.

A thread count changes the order in which PyTorch adds numbers, so a training run takes another
trajectory: this is the cheapest stand-in for a reader's other processor. Each notebook runs in a
fresh kernel with ``MMCOURSE_THREADS`` = ``OMP_NUM_THREADS`` = n and ``MMCOURSE_CHECK_LOG`` set, so
that :mod:`mmcourse.checks` logs every ``assert`` of every cell (its code, the values compared and
whether it held) instead of raising. The report lists, for every check whose values moved or that
failed at some thread count, the values at each count: the spread a margin must cover.

Usage: python scripts/thread_sweep.py [--threads 1,2,3,4] [--out sweep] [--book] [NOTEBOOK ...]
Writes ``OUT/checks-<n>.jsonl`` (one line per check), ``OUT/times.json`` and ``OUT/report.md``;
with ``--book`` also ``book/thread-sweep.json``, which ``scripts/bench.py`` renders into the
runtime page.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse.checks import is_literal  # noqa: E402


def notebooks() -> list[Path]:
    return [ROOT / "book" / "synthetic-world.ipynb", *sorted(ROOT.glob("chapters/*/*.ipynb"))]


#: executes one notebook in a fresh kernel that inherits this process's environment
EXECUTE = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=900, kernel_name="python3").execute()
"""


def run(notebook: Path, threads: int, log: Path) -> tuple[float, int]:
    """Execute ``notebook`` with ``threads`` threads, appending its checks to ``log``."""
    env = {**os.environ, "MMCOURSE_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MMCOURSE_CHECK_LOG": str(log), "MMCOURSE_NOTEBOOK": str(notebook.relative_to(ROOT)),
           "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("MMCOURSE_STRICT", None)
    start = time.perf_counter()
    code = subprocess.run([sys.executable, "-c", EXECUTE, str(notebook)], env=env,
                          cwd=notebook.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if code.returncode:
        print(code.stderr[-3000:], file=sys.stderr)
    return time.perf_counter() - start, code.returncode


def report(out: Path, counts: list[int]) -> tuple[str, dict]:
    """Markdown: each check that moved across thread counts or failed at one, with its values;
    and the same as a summary for the book's runtime page."""
    table: dict[tuple[str, str, int], dict[int, dict]] = defaultdict(dict)
    for n in counts:
        seen: dict[tuple[str, str], int] = defaultdict(int)
        for line in (out / f"checks-{n}.jsonl").read_text().splitlines():
            row = json.loads(line)
            key = (row["notebook"], row["source"])
            table[(*key, seen[key])][n] = row
            seen[key] += 1
    lines = ["| notebook | check | " + " | ".join(f"{n} thr" for n in counts) + " |",
             "|---|---|" + "---|" * len(counts)]
    n_checks = n_moved = n_failed = 0
    summary: dict = {"threads": counts, "notebooks": defaultdict(lambda: [0, 0, 0])}
    for (nb, source, k), rows in sorted(table.items()):
        n_checks += 1
        summary["notebooks"][nb][0] += 1
        values = {n: rows[n]["values"] if n in rows else None for n in counts}
        failed = any(n in rows and not rows[n]["passed"] for n in counts)
        moved = len({json.dumps(v) for v in values.values()}) > 1
        if not (moved or failed):
            continue
        n_moved += moved
        n_failed += failed
        summary["notebooks"][nb][1] += moved
        summary["notebooks"][nb][2] += failed

        def cell(n: int) -> str:
            if n not in rows:
                return "absent"
            shown = ", ".join(f"{v[1]:.4g}" if isinstance(v[1], float) else str(v[1])
                              for v in rows[n]["values"] if not is_literal(v[0]))
            return ("" if rows[n]["passed"] else "**FAIL** ") + (shown or "")
        lines.append(f"| {Path(nb).stem} | `{source[:90]}` #{k} | "
                     + " | ".join(cell(n) for n in counts) + " |")
    head = (f"{n_checks} checks; {n_moved} moved with the thread count; {n_failed} failed at "
            f"some count.\n\n")
    summary |= {"checks": n_checks, "moved_count": n_moved, "failed_count": n_failed,
                "notebooks": {nb: dict(zip(("checks", "moved", "failed"), v))
                              for nb, v in sorted(summary["notebooks"].items())}}
    return head + "\n".join(lines) + "\n", summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2,3,4")
    parser.add_argument("--out", type=Path, default=ROOT / "sweep")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--book", action="store_true",
                        help="also write book/thread-sweep.json for the runtime page")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        times_file = args.out / "times.json"
        times = json.loads(times_file.read_text()) if times_file.exists() else {}
        for n in counts:
            for nb in [p.resolve() for p in args.notebooks] or notebooks():
                seconds, code = run(nb, n, args.out / f"checks-{n}.jsonl")
                times[f"{nb.relative_to(ROOT)} @{n}"] = [round(seconds, 1), code]
                print(f"{n} threads  {nb.name}: {seconds:.0f} s  rc={code}", flush=True)
                times_file.write_text(json.dumps(times, indent=1))
    text, summary = report(args.out, counts)
    (args.out / "report.md").write_text(text)
    print(text)
    if args.book:  # the runtime page's section on checks across thread counts
        from scripts.bench import machine

        summary |= {"date": time.strftime("%Y-%m-%d"), "machine": machine()["cpu"],
                    "cores": os.cpu_count()}
        (ROOT / "book" / "thread-sweep.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
