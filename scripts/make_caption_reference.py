"""Record pycocoevalcap's caption scores on a fixed set of ShapesWorld captions, so that §42.2 can
check `mmcourse.metrics` against them where Java or pycocoevalcap is missing (Colab, laptops).

The inputs are regenerated from a seed by :func:`check_inputs` (the notebook rebuilds the same
captions and checks their SHA-256 against the one stored here). The official scorers run on them as
COCO's evaluation does: Stanford's Java PTB tokenizer on references and candidates, then
``Bleu(4)``, ``Rouge``, ``Cider`` (CIDEr-D) and ``Meteor`` (METEOR 1.5, all four modules), plus the
METEOR 1.5 jar restricted to its exact and stem modules (``-m "exact stem"``): the score our
pure-Python METEOR reproduces without pycocoevalcap's synonym and paraphrase data.

Usage: python scripts/make_caption_reference.py   (needs Java and pycocoevalcap 1.2; ~30 s)
Writes data/caption-reference-scores.json (values rounded to 12 decimals).
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse.data.shapes import COLORS, ShapesWorld  # noqa: E402
from mmcourse.metrics.caption import meteor  # noqa: E402

OUT = ROOT / "data" / "caption-reference-scores.json"
RECIPE = ("ShapesWorld(seed=0) val scenes 0..n-1: item k holds out caption k % 5 and keeps the "
          "other four as references; the candidate is the held-out caption (k % 3 == 0), the same "
          "with its first colour word replaced by the next colour of COLORS (k % 3 == 1), or "
          "caption k % 5 of scene k + 1 (k % 3 == 2), written with a capital and a final period")


def check_inputs(n: int = 300) -> tuple[list[str], list[list[str]]]:
    """The raw candidates and references of the check in §42.2 (see ``RECIPE``)."""
    scenes = ShapesWorld(seed=0).scenes(n + 1, split="val")
    colours = list(COLORS)
    candidates, references = [], []
    for k, scene in enumerate(scenes[:n]):
        held = k % 5
        references.append(scene.captions[:held] + scene.captions[held + 1:])
        words = scene.captions[held].split()
        if k % 3 == 1:  # a wrong colour
            i = next(i for i, w in enumerate(words) if w.strip(":,") in COLORS)
            old = words[i].strip(":,")
            words[i] = words[i].replace(old, colours[(colours.index(old) + 1) % len(colours)])
        elif k % 3 == 2:  # a caption of another scene
            words = scenes[k + 1].captions[held].split()
        text = " ".join(words)
        candidates.append(text[0].upper() + text[1:] + ".")
    return candidates, references


def inputs_sha256(candidates: list[str], references: list[list[str]]) -> str:
    return hashlib.sha256(json.dumps([candidates, references]).encode()).hexdigest()


def official_scores(candidates: list[str], references: list[list[str]]) -> dict:
    """pycocoevalcap's scores (corpus and per item) on the raw captions."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": c} for c in refs]
                              for i, refs in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": c}] for i, c in enumerate(candidates)})
    out = {}
    b, b_items = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        out[f"BLEU-{n + 1}"] = (b[n], b_items[n])
    out["ROUGE-L"] = Rouge().compute_score(gts, res)
    out["CIDEr-D"] = Cider().compute_score(gts, res)
    out["METEOR"] = Meteor().compute_score(gts, res)
    ids = range(len(candidates))  # the jar with -m "exact stem", on the same tokens
    out["METEOR (exact, stem)"] = meteor([res[i][0] for i in ids], [gts[i] for i in ids],
                                         tokenize=False, backend="jar", modules=("exact", "stem"))
    return {name: {"corpus": round(float(corpus), 12),
                   "items": [round(float(x), 12) for x in np.asarray(items, dtype=float)]}
            for name, (corpus, items) in out.items()}


def main() -> None:
    candidates, references = check_inputs()
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    java = java.split("\n")[0]
    record = {"recipe": RECIPE, "n": len(candidates),
              "inputs_sha256": inputs_sha256(candidates, references),
              "made_with": {"pycocoevalcap": version("pycocoevalcap"), "java": java,
                            "python": platform.python_version(),
                            "script": "scripts/make_caption_reference.py"},
              "scores": official_scores(candidates, references)}
    OUT.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size / 1024:.1f} KB): " + ", ".join(
        f"{k} {v['corpus']:.4f}" for k, v in record["scores"].items()))


if __name__ == "__main__":
    main()
