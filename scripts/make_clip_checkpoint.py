"""Train the book's tiny CLIP on ShapesWorld for longer than a notebook can, and save it to
data/clip-shapes.safetensors (weights, configuration, vocabulary and the scores below as metadata).

§40.1 trains the same CLIP for 60 steps to show the loss and accuracy curves: enough to learn
colours and for retrieval to take off, but not for naming shapes, which a small ViT trained from
scratch learns only after thousands of steps. §40.1 then loads this checkpoint and
recomputes every score stored in it; §40.5 reuses its image tower.

The recipe: ``CLIPConfig.tiny`` (the §39.1 ViT: 64 x 64 images, 8 x 8 patches, width 64, 4 layers;
a 2-layer text tower of width 64; 64-dimensional embeddings). Training pairs: ``n_scenes`` train
scenes, half from ``ShapesWorld(seed=0)`` and half from the single-object world
``ShapesWorld(seed=0, max_objects=1)`` (the many simple pairs are what teach shapes), each step a
batch of scenes with one of their five captions at random; symmetric InfoNCE, AdamW, warm-up and
cosine decay by ``mmcourse.train.fit``. Scores, on CPU, on held-out ``ShapesWorld(seed=0)`` test
scenes (see :func:`evaluate`).

Usage: python scripts/make_clip_checkpoint.py [--steps 5000] [--device cuda] [--eval-every N]
                                              [--out PATH]
The shipped file (1.3 MB) was made on one H200 GPU in under 3 minutes, by ``--steps 5000
--eval-every 1000`` (its ``notes`` metadata holds the command, device, time, the scores and the
scores recorded every 1000 steps); on a laptop CPU the same run takes far longer (tens of minutes
or more). Scores can differ slightly from device to device; tests/test_clip_checkpoint.py checks
that the shipped file meets §40.1's targets and reproduces its stored scores. Licence: MIT, as
the repository (weights we trained on generated data).
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
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse import train, utils  # noqa: E402
from mmcourse.data.shapes import COLORS, SHAPES, ShapesWorld, to_tensor  # noqa: E402
from mmcourse.losses import contrastive_loss  # noqa: E402
from mmcourse.metrics import retrieval_scores  # noqa: E402
from mmcourse.models import CLIP, CaptionTokenizer, CLIPConfig  # noqa: E402

OUT = ROOT / "data" / "clip-shapes.safetensors"
#: the zero-shot classes: every colour-shape pair, named as the captions name them
CLASSES: tuple[str, ...] = tuple(f"{c} {s}" for c in COLORS for s in SHAPES)
#: prompt templates in the captions' own styles; zero-shot scores average their embeddings
TEMPLATES: tuple[str, ...] = ("a {}", "there is a {} in the picture", "a picture of a {}",
                              "an image showing a {}", "a {} on a dark background")
MAX_LENGTH = 32
N_TEST = 2000  # test scenes searched for single-object scenes (zero-shot)
N_HELDOUT = 1000  # "heldout" scenes searched for single-object scenes (unseen colour-shape pairs)
N_RETRIEVAL = 500  # test scenes of the retrieval gallery


def training_scenes(n_scenes: int, image_size: int = 64) -> list:
    """Half of the pairs from the default world (1-4 objects), half from the single-object world."""
    half = n_scenes // 2
    single = ShapesWorld(seed=0, image_size=image_size, max_objects=1).scenes(half)
    return single + ShapesWorld(seed=0, image_size=image_size).scenes(n_scenes - half)


def class_of(scene) -> int:
    """The index in CLASSES of a single-object scene's object."""
    obj = scene.objects[0]
    return CLASSES.index(f"{obj.color} {obj.shape}")


def test_sets(image_size: int = 64) -> dict[str, object]:
    """The held-out scenes every score uses: the single-object scenes among the first ``N_TEST``
    test scenes (zero-shot), the single-object scenes among the first ``N_HELDOUT`` "heldout" scenes
    (colour-shape pairs never seen in training), and the first ``N_RETRIEVAL`` test scenes with
    their first caption (retrieval)."""
    world = ShapesWorld(seed=0, image_size=image_size)
    test = world.scenes(N_TEST, split="test")
    heldout = [s for s in world.scenes(N_HELDOUT, split="heldout") if len(s.objects) == 1]
    single = [s for s in test if len(s.objects) == 1]
    return {"single": single, "heldout": heldout, "retrieval": test[:N_RETRIEVAL]}


@torch.no_grad()
def class_embeddings(model: CLIP, tokenizer: CaptionTokenizer) -> torch.Tensor:
    """Prompt-ensembled class embeddings (len(CLASSES), D): each template's text embedding,
    averaged over the templates and normalised again."""
    dev = model.log_logit_scale.device
    per_template = [model.encode_text(**{k: v.to(dev) for k, v in tokenizer(
        [t.format(c) for c in CLASSES]).items()}) for t in TEMPLATES]  # each (C, D)
    return F.normalize(torch.stack(per_template).mean(0), dim=-1)


@torch.no_grad()
def evaluate(model: CLIP, tokenizer: CaptionTokenizer, sets: dict | None = None) -> dict[str, float]:
    """Zero-shot colour x shape accuracy on held-out single-object scenes (and on held-out
    colour-shape pairs), and image<->text recall@1/5/10 on ``N_RETRIEVAL`` held-out scenes."""
    model.eval()
    dev = model.log_logit_scale.device
    sets = sets or test_sets(model.config.vision.image_size)
    weights = class_embeddings(model, tokenizer)  # (C, D)
    scores = {}
    for name in ("single", "heldout"):
        images = model.encode_image(model.pixel_values(to_tensor(sets[name]).to(dev)))  # (N, D)
        labels = torch.tensor([class_of(s) for s in sets[name]], device=dev)
        key = "zero-shot accuracy" + (" (held-out pairs)" if name == "heldout" else "")
        scores[key] = (images @ weights.T).argmax(1).eq(labels).float().mean().item()
    images = model.encode_image(model.pixel_values(to_tensor(sets["retrieval"]).to(dev)))
    batch = tokenizer([s.captions[0] for s in sets["retrieval"]])
    texts = model.encode_text(batch["input_ids"].to(dev), batch["attention_mask"].to(dev))
    return scores | retrieval_scores((images @ texts.T).cpu())


def train_clip(steps: int, batch_size: int = 256, n_scenes: int = 10_000, lr: float = 2e-3,
               warmup: int = 200, device: str | None = None, eval_every: int | None = None,
               progress: bool = True) -> tuple[CLIP, CaptionTokenizer, train.History]:
    """Train the tiny CLIP as the module docstring says; returns it on the CPU, in eval mode."""
    dev = torch.device(device) if device else utils.device()
    scenes = training_scenes(n_scenes)
    tokenizer = CaptionTokenizer.from_texts([c for s in scenes for c in s.captions])
    ids = torch.stack([tokenizer(s.captions, max_length=MAX_LENGTH)["input_ids"]
                       for s in scenes]).to(dev)  # (N, 5, L)
    images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).to(dev)
    utils.seed_everything(0)
    model = CLIP(CLIPConfig.tiny(len(tokenizer), tokenizer.eos_token_id, MAX_LENGTH)).to(dev)

    def batch(step: int):
        g = torch.Generator().manual_seed(step)
        idx = torch.randint(0, len(scenes), (batch_size,), generator=g).to(dev)
        which = torch.randint(0, 5, (batch_size,), generator=g).to(dev)
        text = ids[idx, which]  # (B, L)
        text = text[:, : int((text != 0).sum(1).max())]  # drop all-padding columns
        return model.pixel_values(images[idx].float() / 255), text

    def loss_fn(m: CLIP, b) -> torch.Tensor:
        out = m(b[0], b[1], (b[1] != 0).long())
        return contrastive_loss(out.image_embeds, out.text_embeds, m.logit_scale)

    eval_fn = None
    if eval_every:
        sets = test_sets()

        def eval_fn(m: CLIP) -> dict[str, float]:
            scores = evaluate(m, tokenizer, sets)
            print(json.dumps({"seconds": round(time.perf_counter() - start, 1)} | scores),
                  flush=True)
            return scores

    start = time.perf_counter()
    history = train.fit(model, batch, loss_fn, steps=steps, lr=lr, weight_decay=0.1,
                        warmup=warmup, eval_fn=eval_fn, eval_every=eval_every, desc="CLIP",
                        progress=progress)
    return model.cpu().eval(), tokenizer, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-scenes", type=int, default=10_000)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the best there is)")
    parser.add_argument("--eval-every", type=int, default=None, help="print scores every N steps")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    utils.setup(seed=0)
    start = time.perf_counter()
    model, tokenizer, history = train_clip(args.steps, args.batch_size, args.n_scenes,
                                           device=args.device, eval_every=args.eval_every,
                                           progress=args.eval_every is None)
    seconds = time.perf_counter() - start
    scores = evaluate(model, tokenizer)
    last = history.loss[-100:]
    notes = {"scores": scores, "final loss (mean of the last 100 steps)": sum(last) / len(last),
             "command": utils.script_command(__file__, sys.argv[1:], OUT),
             "device": str(args.device or utils.device()), "seconds": round(seconds, 1),
             "torch": torch.__version__, "python": platform.python_version(),
             "evals": history.evals}  # [(step, scores on the training device)], if --eval-every
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save_checkpoint(args.out, tokenizer, notes=json.dumps(notes))
    print(json.dumps(notes, indent=1))


if __name__ == "__main__":
    main()
