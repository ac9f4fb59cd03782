"""Train §40.2's encoder and its two captioners for longer than a notebook can, and save them to
data/captioners-shapes.safetensors (weights, configurations, vocabulary and scores as metadata).

§40.2 trains Show, Attend and Tell and Bottom-Up Top-Down for a few hundred steps to show the
curves: enough to pass CIDEr-D 1.0, not enough for the attention to settle on one object per word
or for the difference between grid and region features to show. It then loads this file and
recomputes every score it states from it.

The recipe (the notebook's, with more steps): ``ShapesWorld(seed=0)``, the first ``N_SCENES``
train scenes with their five captions; a :class:`GridEncoder` pretrained for ``ENCODER_STEPS`` on
:func:`cell_labels`, then frozen; SAT (hidden size ``SAT_HIDDEN``) on its grid features with the
doubly stochastic penalty (``LAMBDA``) and BUTD (``BUTD_HIDDEN``, about the same number of
parameters) on region features pooled inside the scenes' boxes; teacher forcing with
:func:`caption_batches` / :func:`captioner_loss`, AdamW, warm-up and cosine decay by
``mmcourse.train.fit``, the same seed for both. The training loss (smoothed over 20 steps, every
10th step) and the test CIDEr-D every ``EVAL_EVERY`` steps are kept in the metadata as curves.

Usage: python scripts/make_captioners.py [--steps 2000] [--out PATH]
Deterministic on one machine with a fixed number of threads (``MMCOURSE_THREADS``, default 2);
the shipped file was made with ``MMCOURSE_THREADS=1`` (about 12 minutes on one CPU thread; its
``notes`` metadata holds the command). Scores differ slightly from machine to machine.
Data/README entry: captioners-shapes.safetensors (~2 MB), made by this script, MIT licence.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse import train, utils  # noqa: E402
from mmcourse.data.shapes import ShapesWorld, to_tensor  # noqa: E402
from mmcourse.metrics.caption import cider_d  # noqa: E402
from mmcourse.models import (BottomUpTopDown, BottomUpTopDownConfig, CaptionTokenizer,  # noqa: E402
                             GridEncoder, ShowAttendTell, ShowAttendTellConfig, caption_batches,
                             captioner_loss, cell_labels, grid_features, load_captioners,
                             region_features, save_captioners)

OUT = ROOT / "data" / "captioners-shapes.safetensors"
N_SCENES, N_TEST = 3000, 500
ENCODER_STEPS, ENCODER_BATCH, ENCODER_LR = 200, 64, 1e-2
BATCH, LR, WARMUP, LAMBDA = 64, 1e-2, 20, 0.01
EMBED, ATTENTION, SAT_HIDDEN, BUTD_HIDDEN = 64, 64, 160, 96
MAX_LENGTH = 30
EVAL_EVERY = 250  # test CIDEr-D (greedy) recorded along the way


def data() -> dict:
    """The scenes, the tokenizer and the five references of each training scene as ids."""
    world = ShapesWorld(seed=0)
    scenes = world.scenes(N_SCENES)
    texts = [c for s in scenes for c in s.captions]
    tokenizer = CaptionTokenizer.from_texts(texts)
    ids = tokenizer(texts)["input_ids"].view(N_SCENES, 5, -1)  # (S, 5, L)
    return {"world": world, "scenes": scenes, "tokenizer": tokenizer, "ids": ids,
            "test": world.scenes(N_TEST, split="test")}


def features(encoder: GridEncoder, scenes: list) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Grid and region features (each with its mask) of ``scenes`` from the frozen encoder."""
    with torch.no_grad():
        fmap = encoder(to_tensor(scenes))  # (S, C, 8, 8)
    return {"grid": grid_features(fmap),
            "region": region_features(fmap, [s.boxes for s in scenes], scenes[0].image.shape[0])}


def greedy_cider(model, feats: tuple, scenes: list, tokenizer: CaptionTokenizer) -> float:
    """Test CIDEr-D of greedy captions (punctuation re-attached as in the references)."""
    with torch.no_grad():
        out = model.generate(*feats, max_length=MAX_LENGTH)
    captions = [re.sub(r" ([,:])", r"\1", tokenizer.decode(row)) for row in out]
    return cider_d(captions, [s.captions for s in scenes])[0]


def main(steps: int, out: Path) -> None:
    start = time.perf_counter()
    utils.setup(seed=0)
    d = data()
    world, tokenizer, pad = d["world"], d["tokenizer"], d["tokenizer"].pad_token_id
    images, labels = to_tensor(d["scenes"]), cell_labels(d["scenes"], world.colors, world.shapes)

    utils.seed_everything(0)
    encoder = GridEncoder(len(world.colors), len(world.shapes))

    def encoder_batch(step: int):
        g = torch.Generator().manual_seed(step)
        idx = torch.randint(0, N_SCENES, (ENCODER_BATCH,), generator=g)
        return images[idx], labels[idx]

    train.fit(encoder, encoder_batch, lambda m, b: m.pretraining_loss(*b), steps=ENCODER_STEPS,
              lr=ENCODER_LR, warmup=10, desc="encoder")
    encoder.requires_grad_(False).eval()
    train_feats, test_feats = features(encoder, d["scenes"]), features(encoder, d["test"])

    captioners, scores, curves = {}, {}, {}
    for name, cls, config_cls, kind, hidden, penalty in (
            ("SAT", ShowAttendTell, ShowAttendTellConfig, "grid", SAT_HIDDEN, LAMBDA),
            ("BUTD", BottomUpTopDown, BottomUpTopDownConfig, "region", BUTD_HIDDEN, 0.0)):
        utils.seed_everything(0)
        feats, mask = train_feats[kind]
        model = cls(config_cls(vocab_size=len(tokenizer), feature_dim=feats.shape[-1], pad_id=pad,
                               bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id,
                               embed_dim=EMBED, hidden_dim=hidden, attention_dim=ATTENTION))
        history = train.fit(
            model, caption_batches(feats, mask, d["ids"], BATCH, pad),
            lambda m, b, p=penalty: captioner_loss(m, b, p), steps=steps, lr=LR, warmup=WARMUP,
            eval_fn=lambda m, k=kind: {"CIDEr-D": greedy_cider(m, test_feats[k], d["test"],
                                                               tokenizer)},
            eval_every=EVAL_EVERY, desc=name)
        captioners[name] = model.eval()
        eval_steps, cider = history.eval_curve("CIDEr-D")
        scores[name] = {"final_loss": round(history.smoothed()[-1], 4),
                        "test_cider_d_greedy": round(cider[-1], 4)}
        curves[name] = {"loss_steps": list(range(0, steps, 10)),
                        "loss": [round(v, 4) for v in history.smoothed()[::10]],
                        "cider_steps": eval_steps, "cider": [round(v, 4) for v in cider]}
        print(name, scores[name], flush=True)

    seconds = time.perf_counter() - start
    notes = json.dumps({
        "command": f"MMCOURSE_THREADS={torch.get_num_threads()} python scripts/make_captioners.py "
                   f"--steps {steps}",
        "recipe": {"scenes": N_SCENES, "encoder_steps": ENCODER_STEPS, "steps": steps,
                   "batch": BATCH, "lr": LR, "warmup": WARMUP, "lambda": LAMBDA},
        "scores": scores, "curves": curves, "threads": torch.get_num_threads(),
        "seconds": round(seconds),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__})
    out.parent.mkdir(parents=True, exist_ok=True)
    save_captioners(out, encoder, captioners, tokenizer.vocab, notes)
    _, loaded, _ = load_captioners(out)  # what was written reads back to the same captioners
    for name, model in captioners.items():
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                     loaded[name].state_dict().values()))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {seconds:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per captioner")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    main(args.steps, args.out)
