"""The runtime benchmark: execute every notebook in the table of contents, time each, time the
synthetic world's generators, and write the results into book/runtime.md.

Usage: python scripts/bench.py [--label cpu] [--only PATTERN]
Results are kept per machine label in book/runtime.json, so a GPU run can be added beside the CPU
one (python scripts/bench.py --label gpu on a CUDA machine); book/runtime.md is rendered from all.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.toc import resolve, toc_entries  # noqa: E402


def toc_notebooks() -> list[Path]:
    """Every .ipynb file the table of contents lists, in book order."""
    paths = [resolve(entry) for entry in toc_entries()]
    return [p for p in paths if p is not None and p.suffix == ".ipynb"]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "threads": int(os.environ.get("MMCOURSE_THREADS", "2"))}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def time_notebook(path: Path, timeout: int = 900) -> float:
    """Execute a notebook in a fresh kernel (in its own folder) and return the wall time in seconds."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def time_generators() -> dict:
    """Seconds for 10 000 ShapesWorld scenes and for 1 000 synthesised sentences."""
    from mmcourse.data.shapes import ShapesWorld

    world = ShapesWorld(seed=0)
    start = time.perf_counter()
    scenes = [world.scene(i) for i in range(10_000)]
    out = {"shapesworld_10k_scenes_s": time.perf_counter() - start}
    try:
        from mmcourse.data import speech
    except ImportError:  # the speech module arrives with its own section
        return out
    sentences = [s.captions[0] for s in scenes[:1000]]
    speech.synthesize("warm up")
    start = time.perf_counter()
    for text in sentences:
        speech.synthesize(text)
    out["speech_1k_sentences_s"] = time.perf_counter() - start
    return out


def render(results: dict) -> str:
    labels = sorted(results)
    lines = [
        "# Runtimes",
        "",
        "How long each notebook takes to execute from a fresh kernel, measured by `make bench`",
        "(`scripts/bench.py`), which writes this page. The budget is 90 s per notebook on a 2-core CPU",
        "with `torch.set_num_threads(2)`; training runs a fixed number of steps, so a faster machine",
        "reaches the same numbers sooner.",
        "",
        "## Machines",
        "",
        "| label | processor | cores | torch threads | Python | PyTorch | GPU | measured |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lab in labels:
        m = results[lab]["machine"]
        lines.append(f"| {lab} | {m['cpu']} | {m['cores']} | {m['threads']} | {m['python']} | {m['torch']} | "
                     f"{m.get('gpu', '—')} | {results[lab]['date']} |")
    if not any("gpu" in results[lab]["machine"] for lab in labels):
        lines += ["", "GPU times have not been measured yet. The notebooks run unchanged on CUDA",
                  "(every model and batch goes to `mmcourse.utils.device()`); on a CUDA machine",
                  "`python scripts/bench.py --label gpu` adds a column to the tables below."]
    notebooks = sorted({nb for lab in labels for nb in results[lab]["notebooks"]},
                       key=lambda n: [int(x) if x.isdigit() else x for x in n.replace("-", ".").split(".")])
    lines += ["", "## Notebooks (seconds)", "", "| notebook | " + " | ".join(labels) + " |",
              "|---|" + "---|" * len(labels)]
    for nb in notebooks:
        cells = [f"{results[lab]['notebooks'][nb]:.1f}" if nb in results[lab]["notebooks"] else "—" for lab in labels]
        lines.append(f"| `{nb}` | " + " | ".join(cells) + " |")
    totals = [f"{sum(results[lab]['notebooks'].values()):.0f}" for lab in labels]
    lines.append("| **all notebooks** | " + " | ".join(totals) + " |")
    lines += ["", "## The synthetic world's generators (seconds)", "",
              "Pure-Python work on one core, measured in the same run as the notebooks: it doubles as a",
              "speed check of the machine. Shared cloud machines vary: on this project's 2-core machine",
              "10 000 scenes took from 5.7 s to 10.5 s in runs on one day, and the notebooks slow down",
              "with it (§39.3 from 75 s to 97 s).", "",
              "| task | " + " | ".join(labels) + " |",
              "|---|" + "---|" * len(labels)]
    names = {"shapesworld_10k_scenes_s": "10 000 ShapesWorld scenes (image, captions, QA, scene graph)",
             "speech_1k_sentences_s": "1 000 synthesised sentences at 16 kHz (eSpeak NG, in process)"}
    for key, text in names.items():
        cells = [f"{results[lab]['generators'][key]:.2f}" if key in results[lab]["generators"] else "—" for lab in labels]
        lines.append(f"| {text} | " + " | ".join(cells) + " |")
    metrics_file = ROOT / "book" / "runtime-metrics.json"
    if metrics_file.exists():  # written by scripts/bench_metrics.py
        lines += ["", "## Caption metrics against pycocoevalcap (seconds)", "",
                  "PTB tokenisation + BLEU + ROUGE-L + CIDEr-D on the same 5 000 images × 5 references,",
                  "identical values, measured by `scripts/bench_metrics.py`.", "",
                  "| label | pycocoevalcap 1.2 | mmcourse.metrics | speed-up |", "|---|---|---|---|"]
        for lab, entry in sorted(json.loads(metrics_file.read_text()).items()):
            m = entry["caption_metrics"]
            lines.append(f"| {lab} | {m['pycocoevalcap_s']:.2f} | {m['mmcourse_s']:.2f} | {m['speedup']:.1f}× |")
    sweep_file = ROOT / "book" / "thread-sweep.json"
    if sweep_file.exists():  # written by scripts/thread_sweep.py --book
        sweep = json.loads(sweep_file.read_text())
        counts = ", ".join(map(str, sweep["threads"]))
        lines += ["", "## Checks across thread counts", "",
                  "A notebook's hidden checks test numbers that training produced, and a thread count",
                  "changes the order in which PyTorch adds numbers, so a run takes another path: the",
                  "cheapest stand-in for a reader's other processor. `make sweep`",
                  f"(`scripts/thread_sweep.py`) ran every notebook with {counts} threads on this",
                  f"machine ({sweep['machine']}, {sweep['cores']} cores, {sweep['date']}). A check",
                  "*moved* when some thread count gave it another value; the margins of the checks",
                  "cover the spread measured, which each check's comment in its notebook records.", "",
                  "| notebook | checks | moved | failed at some thread count |", "|---|---|---|---|"]
        for nb, row in sweep["notebooks"].items():
            lines.append(f"| `{nb}` | {row['checks']} | {row['moved']} | {row['failed']} |")
        lines.append(f"| **all notebooks** | {sweep['checks']} | {sweep['moved_count']} | "
                     f"{sweep['failed_count']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="cpu", help="machine label for the results (default: cpu)")
    parser.add_argument("--only", default="", help="only notebooks whose path contains this string")
    args = parser.parse_args()
    os.environ.setdefault("MMCOURSE_THREADS", "2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    store = ROOT / "book" / "runtime.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    entry = results.get(args.label, {"notebooks": {}, "generators": {}})
    entry["machine"] = machine()
    entry["date"] = time.strftime("%Y-%m-%d")
    entry["generators"] = time_generators()
    for key, value in entry["generators"].items():
        print(f"{key}: {value:.2f} s", flush=True)
    for path in toc_notebooks():
        rel = str(path.relative_to(ROOT))
        if args.only and args.only not in rel:
            continue
        seconds = time_notebook(path)
        entry["notebooks"][rel] = round(seconds, 2)
        print(f"{rel}: {seconds:.1f} s", flush=True)
    results[args.label] = entry
    store.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    (ROOT / "book" / "runtime.md").write_text(render(results))
    print(f"wrote {store.relative_to(ROOT)} and book/runtime.md")


if __name__ == "__main__":
    main()
