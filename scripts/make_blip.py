"""Train §40.7's small BLIP in four recipes for longer than a notebook can, and save them to one
file, data/blip-shapes.safetensors (weights, configuration, vocabulary, recipe, scores and curves).

§40.7 trains the BLIP of ``mmcourse.models.blip`` for 150 steps to show its three losses: enough
for ITC to retrieve and for the decoder to caption, not enough for image-text matching (ITM),
which learns from a binary label through cross-attention. It then loads this file and
recomputes every score it states from it.

The recipe (the notebook's, with more scenes and steps): frozen image tokens of the §40.1 CLIP
(data/clip-shapes.safetensors; [CLS] and the 8 x 8 patches pooled to 4 x 4 by
:func:`pool_image_tokens`) for ``N_SCENES`` train scenes, half from the single-object world; each
step ``BATCH`` scenes with one of their five captions at random; AdamW, warm-up and cosine decay by
``mmcourse.train.fit``; the same seed and batches for every variant. ITM never draws as a negative
a scene with the same colours and shapes (:func:`content_groups`: one of its captions could be
true of the other). The variants (``VARIANTS``): ITC alone; ITC + ITM with hard negatives (drawn
in proportion to the ITC similarity, as BLIP does); ITC + ITM with random negatives; and all three
losses. Scores on ``N_TEST`` held-out test scenes (:func:`evaluate`).

Usage: python scripts/make_blip.py [--steps N] [--out PATH]
Deterministic on one machine with a fixed number of threads (``MMCOURSE_THREADS``, default 2); the
shipped file was made with ``MMCOURSE_THREADS=1`` (its ``notes`` metadata holds the command, the
time and the number of threads). Scores differ slightly from machine to machine.
Licence of the file: MIT, as the repository (weights we trained on generated data).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse import train, utils  # noqa: E402
from mmcourse.data.noise import wrong_attribute  # noqa: E402
from mmcourse.data.shapes import ShapesWorld, to_tensor  # noqa: E402
from mmcourse.metrics import cider_d, retrieval_scores  # noqa: E402
from mmcourse.models import (BLIP, CLIP, BLIPConfig, CaptionTokenizer, load_blips,  # noqa: E402
                             pool_image_tokens, save_blips)

OUT = ROOT / "data" / "blip-shapes.safetensors"
CLIP_CHECKPOINT = ROOT / "data" / "clip-shapes.safetensors"
N_SCENES, N_TEST = 4000, 500
BATCH, LR, WARMUP, STEPS = 32, 2e-3, 100, 1500
TOP_K = 8  # ITM re-ranks the ITC top-k images of each caption
MAX_CAPTION = 28  # greedy captions, tokens
EVAL_EVERY = 500
#: name -> (losses, hard negatives)
VARIANTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "itc": (("itc",), True),
    "itc_itm_hard": (("itc", "itm"), True),
    "itc_itm_random": (("itc", "itm"), False),
    "itc_itm_hard_lm": (("itc", "itm", "lm"), True),
}


def content_groups(scenes: list) -> torch.Tensor:
    """(S,) ids, equal for scenes with the same multiset of (colour, shape): a caption of one may
    be true of the other (some captions leave sizes out), so they are never ITM negatives."""
    content = [tuple(sorted((o.color, o.shape) for o in s.objects)) for s in scenes]
    ids = {c: k for k, c in enumerate(sorted(set(content)))}
    return torch.tensor([ids[c] for c in content])


@torch.no_grad()
def image_features(clip: CLIP, scenes: list, chunk: int = 500) -> torch.Tensor:
    """The frozen CLIP image tower's pooled tokens (S, 17, 64) of ``scenes``."""
    return torch.cat([pool_image_tokens(clip.vision(clip.pixel_values(
        to_tensor(scenes[k: k + chunk]))).last_hidden_state) for k in range(0, len(scenes), chunk)])


def data(n_scenes: int | None = None) -> dict:
    """Training tokens, captions (as ids) and groups of ``n_scenes`` (default ``N_SCENES``)
    scenes; the ``N_TEST`` test scenes' tokens, first captions and one-attribute changes."""
    n_scenes, n_test = n_scenes or N_SCENES, N_TEST
    clip = CLIP.from_checkpoint(CLIP_CHECKPOINT).eval()
    tokenizer = CaptionTokenizer.from_checkpoint(CLIP_CHECKPOINT)
    world = ShapesWorld(seed=0)
    half = n_scenes // 2
    scenes = ShapesWorld(seed=0, max_objects=1).scenes(half) + world.scenes(n_scenes - half)
    test = world.scenes(n_test, split="test")
    first = [s.captions[0] for s in test]
    return {"tokenizer": tokenizer, "tokens": image_features(clip, scenes),
            "ids": torch.stack([tokenizer(s.captions, max_length=32)["input_ids"]
                                for s in scenes]),  # (S, 5, L)
            "groups": content_groups(scenes), "test_tokens": image_features(clip, test),
            "gallery": tokenizer(first),
            "altered": tokenizer([wrong_attribute(c, np.random.default_rng(k))
                                  for k, c in enumerate(first)]),
            "references": [s.captions for s in test]}


def batches(d: dict):
    """``batch(step)`` -> ``BATCH`` image tokens, ids, mask, groups and the step's generator
    (which also draws ITM's negatives): the same batches for every variant."""
    batch_size = BATCH

    def batch(step: int):
        g = torch.Generator().manual_seed(step)
        idx = torch.randint(0, len(d["ids"]), (batch_size,), generator=g)
        ids = d["ids"][idx, torch.randint(0, 5, (batch_size,), generator=g)]
        ids = ids[:, : int((ids != 0).sum(1).max())]  # drop all-padding columns
        return d["tokens"][idx], ids, (ids != 0).long(), d["groups"][idx], g
    return batch


@torch.no_grad()
def evaluate(model: BLIP, d: dict, use: tuple[str, ...]) -> dict[str, float]:
    """Held-out scores of the modes trained in ``use``: ITC text->image R@1 (first captions);
    the attribute test (is a scene's caption preferred to it with one colour or shape changed?)
    by ITC and by ITM; ITM re-ranking of the ITC top ``TOP_K`` (BLIP's score: match logit +
    ITC cosine) as R@1; CIDEr-D of greedy captions against the five references."""
    model.eval()
    images, gallery, altered = d["test_tokens"], d["gallery"], d["altered"]
    n = len(images)
    u = model.image_embed(images)
    v, v_bad = (model.text_embed(t["input_ids"], t["attention_mask"]) for t in (gallery, altered))
    similarity = u @ v.T  # (N images, N captions), cosines
    out = {"ITC R@1": retrieval_scores(similarity, ks=(1,))["text->image R@1"],
           "ITC attribute": ((u * v).sum(1) > (u * v_bad).sum(1)).float().mean().item()}
    if "itm" in use:
        top = similarity.T.topk(TOP_K, dim=1).indices  # (N captions, k images)
        q = torch.arange(n).repeat_interleave(TOP_K)
        match = model.itm_logits(images[top.flatten()], gallery["input_ids"][q],
                                 gallery["attention_mask"][q])[:, 1].view(n, TOP_K)
        best = (match + similarity.T.gather(1, top)).argmax(1)
        out["ITM re-ranked R@1"] = (top[torch.arange(n), best] == torch.arange(n)).float().mean().item()
        good, bad = (model.itm_logits(images, t["input_ids"], t["attention_mask"])[:, 1]
                     for t in (gallery, altered))
        out["ITM attribute"] = (good > bad).float().mean().item()
    if "lm" in use:
        tokenizer = d["tokenizer"]
        ids = model.generate(images, tokenizer.bos_token_id, max_length=MAX_CAPTION)
        out["CIDEr-D"] = cider_d([tokenizer.decode(row) for row in ids], d["references"])[0]
    return out


def train_variant(d: dict, config: BLIPConfig, use: tuple[str, ...], hard: bool, steps: int,
                  name: str = "BLIP", progress: bool = True) -> tuple[BLIP, dict, list]:
    """Train one variant; returns the model (eval mode), each loss per step and the evals."""
    utils.seed_everything(0)
    model = BLIP(config)
    parts = {k: [] for k in use}

    def loss_fn(m: BLIP, b) -> torch.Tensor:
        losses = m.losses(*b[:3], use=use, hard_negatives=hard, groups=b[3], generator=b[4])
        for k, v in losses.items():
            parts[k].append(v.item())
        return sum(losses.values())

    history = train.fit(model, batches(d), loss_fn, steps=steps, lr=LR, warmup=WARMUP,
                        eval_fn=lambda m: evaluate(m, d, use), eval_every=EVAL_EVERY, desc=name,
                        progress=progress)
    return model.eval(), parts, history.evals


def main(steps: int, out: Path) -> None:
    start = time.perf_counter()
    utils.setup(seed=0)
    d = data()
    tokenizer = d["tokenizer"]
    config = BLIPConfig(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id)
    models, scores, curves = {}, {}, {}
    for name, (use, hard) in VARIANTS.items():
        models[name], parts, evals = train_variant(d, config, use, hard, steps, name)
        scores[name] = evaluate(models[name], d, use)
        curves[name] = {"loss_steps": list(range(0, steps, 10)),  # mean of each 10 steps
                        "loss": {k: [round(float(np.mean(v[i: i + 10])), 4)
                                     for i in range(0, steps, 10)] for k, v in parts.items()},
                        "evals": evals}
        print(name, json.dumps(scores[name]), flush=True)
    seconds = time.perf_counter() - start
    notes = json.dumps({
        "command": f"MMCOURSE_THREADS={torch.get_num_threads()} python scripts/make_blip.py "
                   f"--steps {steps}",
        "recipe": {"scenes": N_SCENES, "test scenes": N_TEST, "steps": steps, "batch": BATCH,
                   "lr": LR, "warmup": WARMUP, "top_k": TOP_K, "image tokens":
                   "data/clip-shapes.safetensors, [CLS] + patches pooled to 4 x 4",
                   "variants": {k: {"losses": list(u), "hard negatives": h and "itm" in u}
                                for k, (u, h) in VARIANTS.items()}},
        "scores": scores, "curves": curves, "threads": torch.get_num_threads(),
        "seconds": round(seconds),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__, "python": platform.python_version()})
    out.parent.mkdir(parents=True, exist_ok=True)
    save_blips(out, models, tokenizer.vocab, notes)
    loaded, _ = load_blips(out)  # what was written reads back to the same models
    for name, model in models.items():
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                     loaded[name].state_dict().values()))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {seconds:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps per variant")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    main(args.steps, args.out)
