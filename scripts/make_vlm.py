"""Train §40.5's tiny LLaVA for longer than a notebook can, beside the same model with its
language model frozen and the text-only ("blind") baseline, and save all three to data/ (the
trained tensors; recipe, training curves, seconds per step and scores as metadata).

The model is built as LLaVA is: the frozen image tower of the §40.1 CLIP
(data/clip-shapes.safetensors, its penultimate layer, 64 patch features of width 64), a connector
(``--connector``: a ``PatchMerger`` with learned positions by default, 2 x 2 patches per visual
token, so 16 tokens), and the §40.4 language model (data/tiny-lm.safetensors).

- Stage 1, feature alignment (``--stage1`` steps): the connector alone learns to turn an image into
  tokens from which the frozen LM writes the scene's captions.
- Stage 2, visual instruction tuning (``--stage2`` steps): the connector and the whole LM learn
  from conversations generated from the scenes' annotations in the chat template
  (``mmcourse.vqa.chat_examples``, two per scene), the loss on the assistant's words only.
- "frozen": the same two stages, but stage 2 trains the connector alone (the LM stays as
  pretrained, as BLIP-2 and Flamingo keep theirs).
- "blind": the same LM tuned by the same stage-2 recipe on the same conversations with the image
  removed, so it sees exactly the words the LLaVA sees.

Scores: official VQA accuracy (``mmcourse.metrics.vqa_accuracy``) per question type on the first
``N_TEST`` test scenes and the first ``N_TEST`` held-out scenes (each holds a colour-shape pair
never seen in training), greedy one-word answers in the chat template; during stage 2, accuracy on
300 test scenes every ``--eval-every`` steps.

Usage: python scripts/make_vlm.py [--models llava,frozen,blind] [--stage2 5000] [--out PATH]
       python scripts/make_vlm.py --merge PART.safetensors PART.safetensors [--out PATH]
Deterministic on one machine for a fixed number of threads (``--threads``, default 1); each model
is seeded on its own, so ``--models`` subsets train exactly what the full run trains, and
``--merge`` joins such partial files (same recipe) into one, as the full run would have written
it. The shipped file was made on this project's 2-core machine as two one-thread runs side by
side, ``--models llava,blind`` and ``--models frozen``, then merged (its ``notes`` metadata holds
the commands and the summed time). tests/test_vlm_checkpoints.py reloads it and
recomputes the scores. Licence: MIT, as the repository (weights we trained on generated data).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse import train, utils, vqa  # noqa: E402
from mmcourse.data.lm_text import WordTokenizer  # noqa: E402
from mmcourse.data.shapes import ShapesWorld  # noqa: E402
from mmcourse.models import (CLIP, LLaVA, LlamaLM, llava_connector, read_notes,  # noqa: E402
                             trainable_state)

OUT = ROOT / "data" / "vlm-llava.safetensors"
CLIP_FILE, LM_FILE = ROOT / "data" / "clip-shapes.safetensors", ROOT / "data" / "tiny-lm.safetensors"
N_TRAIN, N_TEST, BATCH = 20000, 1000, 64
#: the models a run trains: the LLaVA, the same with its LM frozen in stage 2, the blind baseline
MODELS = ("llava", "frozen", "blind")
STAGE1_LR, STAGE2_LR, WARMUP = 2e-3, 1e-3, 50


def load_parts() -> tuple[CLIP, LlamaLM, WordTokenizer]:
    """The shipped CLIP (eval mode) and the shipped LM with its tokenizer."""
    return (CLIP.from_checkpoint(CLIP_FILE).eval(), LlamaLM.from_checkpoint(LM_FILE),
            WordTokenizer.from_checkpoint(LM_FILE))


def data(clip: CLIP, layer: int = -2, n_train: int = N_TRAIN, n_test: int = N_TEST) -> dict:
    """Train, test and held-out scenes and their frozen tower features (hidden state ``layer``)."""
    world = ShapesWorld(seed=0)
    out = {"train": world.scenes(n_train), "test": world.scenes(n_test, split="test"),
           "heldout": world.scenes(n_test, split="heldout")}
    return out | {f"{k} features": vqa.tower_features(clip, v, layer) for k, v in list(out.items())}


def train_llava(vlm: LLaVA, tokenizer: WordTokenizer, d: dict, tokens: int, stage1: int,
                stage2: int, progress: bool = True, eval_every: int | None = None,
                lr: float = STAGE2_LR, freeze_lm: bool = False) -> dict:
    """Stage 1 then stage 2 as the module docstring says (``freeze_lm``: stage 2 trains the
    connector alone); returns the two histories' losses, stage 2's seconds per step and its
    accuracy on the first 300 test scenes every ``eval_every`` steps."""
    for p in vlm.parameters():
        p.requires_grad = False
    curves = {}
    if stage1:
        for p in vlm.connector.parameters():
            p.requires_grad = True
        batches = vqa.Batches(vqa.caption_examples(d["train"], tokens), d["train features"],
                              tokenizer, "caption", BATCH)
        curves["stage 1"] = train.fit(vlm, batches, vqa.batch_loss, stage1, lr=STAGE1_LR,
                                      warmup=WARMUP, desc="stage 1", progress=progress).loss
    trained = list(vlm.connector.parameters())
    if not freeze_lm:
        trained += list(vlm.language_model.parameters())
    for p in trained:
        p.requires_grad = True
    batches = vqa.Batches(vqa.chat_examples(d["train"], tokens), d["train features"], tokenizer,
                          "chat", BATCH)
    def accuracy(model: LLaVA) -> dict[str, float]:
        return vqa.score_vqa(model, tokenizer, d["test"][:300], d["test features"][:300], tokens,
                             "chat")[0]

    start = time.perf_counter()
    history = train.fit(vlm, batches, vqa.batch_loss, stage2, lr=lr, warmup=WARMUP,
                        weight_decay=0.0, desc="stage 2", progress=progress,
                        eval_fn=accuracy if eval_every else None, eval_every=eval_every or None)
    curves["stage 2"] = history.loss
    curves["stage 2 seconds per step"] = (time.perf_counter() - start) / max(stage2, 1)
    if eval_every:
        curves["stage 2 accuracy"] = history.evals
        print(json.dumps(history.evals), flush=True)
    return curves


def train_blind(lm: LlamaLM, tokenizer: WordTokenizer, d: dict, stage2: int,
                progress: bool = True) -> list[float]:
    """The blind baseline: stage 2's recipe on the same conversations without the image."""
    batches = vqa.Batches(vqa.chat_examples(d["train"], 0), None, tokenizer, "chat", BATCH)
    return train.fit(lm, batches, vqa.batch_loss, stage2, lr=STAGE2_LR, warmup=WARMUP,
                     desc="blind", progress=progress).loss


def scores(model: torch.nn.Module, tokenizer: WordTokenizer, d: dict, tokens: int | None
           ) -> dict[str, dict[str, float]]:
    """VQA accuracy per type on the test and held-out scenes (``tokens`` None: blind)."""
    return {split: vqa.score_vqa(model, tokenizer, d[split],
                                 None if tokens is None else d[f"{split} features"],
                                 tokens or 0, "chat")[0]
            for split in ("test", "heldout")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage1", type=int, default=300)
    parser.add_argument("--stage2", type=int, default=5000)
    parser.add_argument("--connector", default="merger")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"which of {MODELS} to train (each is seeded on its own, so a subset "
                             "trains exactly what the full run would)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--layer", type=int, default=-2)
    parser.add_argument("--n-train", type=int, default=N_TRAIN)
    parser.add_argument("--n-test", type=int, default=N_TEST)
    parser.add_argument("--stage2-lr", type=float, default=STAGE2_LR)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--merge", type=Path, nargs="+",
                        help="join files written by runs with --models subsets, train nothing")
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, args.out)
        return
    models = args.models.split(",")
    if not set(models) <= set(MODELS):
        raise SystemExit(f"--models must name some of {MODELS}, got {args.models!r}")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    clip, lm, tokenizer = load_parts()
    d = data(clip, args.layer, args.n_train, args.n_test)
    tokens = llava_connector(args.connector, 1, 1)[1]
    curves, result, tensors = {}, {}, {}
    for name in models:
        utils.seed_everything(0)
        if name == "blind":
            model = LlamaLM.from_checkpoint(LM_FILE)
            curves["blind"] = train_blind(model, tokenizer, d, args.stage2)
        else:
            conn, _ = llava_connector(args.connector, clip.config.vision.hidden_size,
                                      lm.config.hidden_size)
            model = LLaVA(clip.vision, conn, LlamaLM.from_checkpoint(LM_FILE),
                          tokenizer.image_token_id, vision_feature_layer=args.layer)
            prefix = "" if name == "llava" else f"{name} "
            curves |= {prefix + k: v for k, v in train_llava(
                model, tokenizer, d, tokens, args.stage1, args.stage2, eval_every=args.eval_every,
                lr=args.stage2_lr, freeze_lm=name == "frozen").items()}
        result[name] = scores(model, tokenizer, d, None if name == "blind" else tokens)
        tensors |= {f"{name}.{k}": v for k, v in trainable_state(model).items()}
        print(name, json.dumps(result[name], indent=1), time.perf_counter() - start, flush=True)
    notes = {"scores": result,
             "curves": {k: (v if "accuracy" in k or "seconds" in k else smooth(v))
                        for k, v in curves.items()},
             "config": {"connector": args.connector, "visual tokens": tokens, "layer": args.layer},
             "recipe": {"stage1": args.stage1, "stage2": args.stage2, "batch_size": BATCH,
                        "stage1_lr": STAGE1_LR, "stage2_lr": args.stage2_lr, "warmup": WARMUP,
                        "n_train": args.n_train, "n_test": args.n_test, "format": "chat",
                        "world": "ShapesWorld(seed=0)", "conversations per scene": 2},
             "command": utils.script_command(__file__, sys.argv[1:], OUT),
             "threads": args.threads, "seconds": round(time.perf_counter() - start, 1),
             "torch": torch.__version__, "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(args.out),
              metadata={"notes": json.dumps(notes)})


def merge(parts: list[Path], out: Path) -> None:
    """Join the files of runs that trained disjoint ``--models`` subsets with the same recipe into
    one file with the models in ``MODELS`` order (their seconds summed, their commands listed)."""
    from safetensors.torch import load_file

    notes = [read_notes(p) for p in parts]
    same = ("config", "recipe", "threads", "torch", "python")
    for n in notes[1:]:
        if any(n[k] != notes[0][k] for k in same):
            raise SystemExit(f"--merge: the parts differ in {[k for k in same if n[k] != notes[0][k]]}")
    found = [name for n in notes for name in n["scores"]]
    if len(found) != len(set(found)):
        raise SystemExit(f"--merge: a model is in more than one part: {found}")
    order = [name for name in MODELS if name in found]
    scores = {k: v for n in notes for k, v in n["scores"].items()}
    tensors = {k: v for p in parts for k, v in load_file(str(p)).items()}
    merged = {**notes[0], "scores": {name: scores[name] for name in order},
              "curves": {k: v for n in notes for k, v in n["curves"].items()},
              "command": " && ".join([n["command"].strip() for n in notes]
                                     + [utils.script_command(__file__, ["--merge", *(
                                         p.name for p in parts), "--out", str(out)], OUT)]),
              "seconds": round(sum(n["seconds"] for n in notes), 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: tensors[k].contiguous() for k in sorted(tensors, key=lambda k: (
        order.index(k.split(".")[0]), k))}, str(out), metadata={"notes": json.dumps(merged)})


def smooth(loss: list[float], window: int = 50, every: int = 10) -> list[float]:
    """A training curve for the metadata: the trailing mean over ``window`` steps, every
    ``every``-th step."""
    return [sum(loss[max(0, k - window + 1): k + 1]) / len(loss[max(0, k - window + 1): k + 1])
            for k in range(0, len(loss), every)]


if __name__ == "__main__":
    main()
