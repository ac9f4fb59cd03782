"""Benchmark the caption metrics against pycocoevalcap: COCO tokenisation + BLEU-1..4 + ROUGE-L +
CIDEr-D on 5 000 ShapesWorld scenes x 5 reference captions, both in this run, asserting that the
values are identical (to 1e-9), and write the speed-up to book/runtime-metrics.json.

Usage: python scripts/bench_metrics.py [--images 5000] [--label cpu]
Needs Java and pycocoevalcap (the reference tokenizer is Stanford's Java PTBTokenizer).
"""
from __future__ import annotations

import argparse
import datetime
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse.data.shapes import COLORS, ShapesWorld  # noqa: E402
from mmcourse.metrics.caption import bleu, cider_d, ptb_tokenize_lines, rouge_l  # noqa: E402
from scripts.bench import machine  # noqa: E402


def perturb(caption: str, rng: random.Random) -> str:
    """A caption as a model or an annotator might write it: a colour or word changed or dropped,
    words repeated, capitals and final punctuation."""
    words = caption.split()
    r = rng.random()
    if r < 0.25:
        colours = [k for k, w in enumerate(words) if w.strip(",:") in COLORS]
        if colours:
            k = rng.choice(colours)
            words[k] = words[k].replace(words[k].strip(",:"), rng.choice(list(COLORS)))
    elif r < 0.45 and len(words) > 3:
        del words[rng.randrange(len(words))]
    elif r < 0.55:
        k = rng.randrange(len(words))
        words.insert(k, words[k])
    text = " ".join(words)
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    return text + rng.choice(["", ".", " .", "!", "..."])


def make_data(n_images: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    world = ShapesWorld(seed=seed, image_size=32)
    rng = random.Random(seed)
    candidates, references = [], []
    for i in range(n_images):
        captions = world.scene(i).captions
        references.append([perturb(c, rng) if rng.random() < 0.3 else c for c in captions[:5]])
        candidates.append(perturb(rng.choice(captions), rng))
    return candidates, references


def run_pycocoevalcap(candidates, references) -> tuple[dict, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    start = time.perf_counter()
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": c} for c in refs]
                              for i, refs in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": c}] for i, c in enumerate(candidates)})
    b, b_items = Bleu(4).compute_score(gts, res, verbose=0)
    r, r_items = Rouge().compute_score(gts, res)
    c, c_items = Cider().compute_score(gts, res)
    seconds = time.perf_counter() - start
    return {"bleu": (b, np.array(b_items).T), "rouge": (r, np.array(r_items)),
            "cider": (c, np.array(c_items))}, seconds


def run_mmcourse(candidates, references) -> tuple[dict, float, dict]:
    start = time.perf_counter()
    cands = ptb_tokenize_lines(candidates)
    flat = ptb_tokenize_lines([r for refs in references for r in refs])
    refs, k = [], 0
    for r in references:
        refs.append(flat[k:k + len(r)])
        k += len(r)
    t_tok = time.perf_counter()
    b, b_items = bleu(cands, refs, tokenize=False)
    t_bleu = time.perf_counter()
    r, r_items = rouge_l(cands, refs, tokenize=False)
    t_rouge = time.perf_counter()
    c, c_items = cider_d(cands, refs, tokenize=False)
    end = time.perf_counter()
    parts = {"tokenize_s": t_tok - start, "bleu_s": t_bleu - t_tok, "rouge_l_s": t_rouge - t_bleu,
             "cider_d_s": end - t_rouge}
    return {"bleu": (b, np.array(b_items)), "rouge": (r, np.array(r_items)),
            "cider": (c, np.array(c_items))}, end - start, parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--label", default="cpu")
    args = parser.parse_args()
    candidates, references = make_data(args.images)
    ours, ours_s, parts = run_mmcourse(candidates, references)
    theirs, theirs_s = run_pycocoevalcap(candidates, references)
    for name in ("bleu", "rouge", "cider"):
        assert np.allclose(ours[name][0], theirs[name][0], atol=1e-9, rtol=0), name
        assert np.allclose(ours[name][1], theirs[name][1], atol=1e-9, rtol=0), name
    speedup = theirs_s / ours_s
    print(f"{args.images} images x 5 references: BLEU-4 {ours['bleu'][0][3]:.4f}, ROUGE-L "
          f"{ours['rouge'][0]:.4f}, CIDEr-D {ours['cider'][0]:.4f} (identical to pycocoevalcap)")
    print("mmcourse: " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    print(f"pycocoevalcap {theirs_s:.2f} s, mmcourse {ours_s:.2f} s: {speedup:.1f}x faster")
    out = ROOT / "book" / "runtime-metrics.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results[args.label] = {
        "date": datetime.date.today().isoformat(), "machine": machine(),
        "caption_metrics": {"images": args.images, "references_per_image": 5,
                            "pycocoevalcap_s": round(theirs_s, 3), "mmcourse_s": round(ours_s, 3),
                            "mmcourse_parts_s": {k: round(v, 3) for k, v in parts.items()},
                            "speedup": round(speedup, 2)},
    }
    out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
