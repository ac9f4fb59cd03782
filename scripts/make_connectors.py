"""Train §40.4's four connectors between the frozen CLIP image tower and the frozen tiny LM for
longer than a notebook can, and save their weights to data/vlm-connectors.safetensors (only the
trained parameters; the tower and the LM come from data/clip-shapes.safetensors and
data/tiny-lm.safetensors), with the recipe, curves and scores as metadata.

The recipe (§40.4's, with more steps): ``mmcourse.models.vlm.connector_model`` for each of
``CONNECTORS`` (linear, MLP, Q-Former, Flamingo's resampler and gated cross-attention), the tower's
penultimate-layer patch features of the first ``N_TRAIN`` train scenes of ``ShapesWorld(seed=0)``
computed once, every question with its answer in the LM's pretraining format
(``<image> ... question: what colour is the circle? answer: red``), the loss on the answer and
``<eos>`` only (``mmcourse.vqa``), AdamW with warm-up and cosine decay by ``mmcourse.train.fit``,
the same seed and batches for every connector. Scores: official VQA accuracy per question type on
the first ``N_TEST`` test scenes (greedy one-word answers), and seconds per training step.

Usage: python scripts/make_connectors.py [--steps 1500] [--out PATH]
Deterministic on one machine for a fixed number of threads (``--threads``, default 1); the
shipped file was made by the default command on one CPU thread of this project's 2-core machine
(its ``notes`` metadata holds the command and time). tests/test_vlm_checkpoints.py reloads it and
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
from mmcourse.models import (CLIP, CONNECTORS, LlamaLM, connector_model,  # noqa: E402
                             trainable_state)

OUT = ROOT / "data" / "vlm-connectors.safetensors"
CLIP_FILE, LM_FILE = ROOT / "data" / "clip-shapes.safetensors", ROOT / "data" / "tiny-lm.safetensors"
N_TRAIN, N_TEST, BATCH, LR, WARMUP = 4000, 300, 32, 3e-3, 50


def frozen_parts() -> tuple[CLIP, LlamaLM, WordTokenizer]:
    """The shipped CLIP and LM, frozen and in eval mode, and the LM's tokenizer."""
    clip, lm = CLIP.from_checkpoint(CLIP_FILE).eval(), LlamaLM.from_checkpoint(LM_FILE).eval()
    for p in list(clip.parameters()) + list(lm.parameters()):
        p.requires_grad = False
    return clip, lm, WordTokenizer.from_checkpoint(LM_FILE)


def test_data(clip: CLIP) -> tuple[list, torch.Tensor]:
    """The first ``N_TEST`` test scenes and their tower features."""
    scenes = ShapesWorld(seed=0).scenes(N_TEST, split="test")
    return scenes, vqa.tower_features(clip, scenes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--n-train", type=int, default=N_TRAIN)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    clip, lm, tokenizer = frozen_parts()
    scenes = ShapesWorld(seed=0).scenes(args.n_train)
    features = vqa.tower_features(clip, scenes)
    tests, test_features = test_data(clip)
    tensors, notes = {}, {"scores": {}, "curves": {}, "seconds per step": {}, "trainable": {}}
    for kind in CONNECTORS:
        utils.seed_everything(0)
        model, tokens = connector_model(kind, clip.vision, lm, tokenizer.image_token_id)
        batches = vqa.Batches(vqa.qa_examples(scenes, tokens), features, tokenizer, "qa", BATCH)
        t0 = time.perf_counter()
        history = train.fit(model, batches, vqa.batch_loss, args.steps, lr=LR, warmup=WARMUP,
                            desc=kind)
        notes["seconds per step"][kind] = (time.perf_counter() - t0) / args.steps
        notes["scores"][kind] = vqa.score_vqa(model, tokenizer, tests, test_features, tokens)[0]
        notes["curves"][kind] = history.smoothed(50)[::10]
        state = trainable_state(model)
        notes["trainable"][kind] = sum(v.numel() for v in state.values())
        tensors |= {f"{kind}.{name}": v.contiguous() for name, v in state.items()}
        print(kind, json.dumps(notes["scores"][kind]), flush=True)
    notes |= {"recipe": {"steps": args.steps, "batch_size": BATCH, "lr": LR, "warmup": WARMUP,
                         "n_train": args.n_train, "n_test": N_TEST, "format": "qa",
                         "world": "ShapesWorld(seed=0)"},
              "command": utils.script_command(__file__, sys.argv[1:], OUT),
              "threads": args.threads, "seconds": round(time.perf_counter() - start, 1),
              "torch": torch.__version__, "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata={"notes": json.dumps(notes)})
    print(json.dumps({k: notes[k] for k in ("scores", "seconds per step", "trainable")}, indent=1))


if __name__ == "__main__":
    main()
