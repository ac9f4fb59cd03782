"""Train the visual dialogue models of §40.3 for longer than a notebook can, and save them to
data/visdial-<encoder>-<decoder>.safetensors (weights, configuration, vocabulary, recipe and the
held-out scores as metadata).

§40.3 trains one model for a few hundred steps to show the curve: at that length every encoder,
with or without history, is still near the history-free baseline. These runs train each model on
4000 dialogues (32 000 rounds) for ``--steps`` steps; §40.3 loads them, recomputes every score
stored here, and tests/test_visdial_checkpoints.py checks them.

Recipe (deterministic on one machine): ``make_visdial(4000)``; ``VisDialConfig`` defaults; every
step 16 whole dialogues (128 rounds) chosen by ``torch.randperm`` seeded with the step;
``mmcourse.train.fit`` with AdamW, lr 3e-3, 20 warm-up steps, cosine decay; seed 0 for every model;
one CPU thread. A generative model takes the word embedding and the encoder of the discriminative
model with the same encoder, frozen, and trains only its decoder (``--gen-steps`` steps): trained
from scratch together, its encoder either saturated (lr 3e-3: tanh at +-1 for every round within
150 steps) or, at lr 1e-3 after 4000 steps, did not learn to use the history at all. Scores on the 200 held-out test dialogues (1600
rounds) with 100 candidates each.

Usage: python scripts/make_visdial_checkpoints.py [--steps 4000] [--only memory-discriminative ...]
Data/README entry: visdial-*.safetensors (~0.2 MB each), made by this script, MIT licence.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse import train, utils  # noqa: E402
from mmcourse.data.dialogue import VisDialData, VisDialSet, make_visdial  # noqa: E402
from mmcourse.metrics import ranking_metrics  # noqa: E402
from mmcourse.models import VisDialConfig, VisDialModel  # noqa: E402

#: checkpoint name -> VisDialConfig options
MODELS: dict[str, dict] = {
    f"{name}-{decoder}": dict(options, decoder=decoder)
    for decoder in ("discriminative", "generative")
    for name, options in (("none", dict(encoder="late", history=False)),
                          ("late", dict(encoder="late")), ("memory", dict(encoder="memory")))}
def path(name: str) -> Path:
    return ROOT / "data" / f"visdial-{name}.safetensors"


def evaluate(model: VisDialModel, data: VisDialData, pool_ids: torch.Tensor) -> dict[str, dict]:
    """Ranking metrics on all rounds, on those whose question needs the history ("history") and
    on the others ("image")."""
    model.eval()
    with torch.no_grad():
        scores = model.scores(data, pool_ids)
    needs = data.needs_history
    return {part: ranking_metrics(scores[m], data.truth[m], data.relevance[m])
            for part, m in (("all", torch.ones_like(needs)), ("history", needs), ("image", ~needs))}


def batches(data: VisDialData, num_dialogues: int, rounds: int = 8, per_step: int = 16):
    """``step -> batch`` of ``per_step`` whole dialogues, chosen by a generator seeded with step."""
    def batch(step: int) -> VisDialData:
        chosen = torch.randperm(num_dialogues, generator=torch.Generator().manual_seed(step))
        rows = chosen[:per_step, None] * rounds + torch.arange(rounds)
        return data.select(rows.flatten())
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--gen-steps", type=int, default=2000)
    parser.add_argument("--only", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    utils.setup(seed=0)
    torch.set_num_threads(1)
    data: VisDialSet = make_visdial(4000)
    for name in args.only:
        utils.seed_everything(0)
        config = VisDialConfig(len(data.vocab), data.vocab.attribute_ids(), **MODELS[name])
        model = VisDialModel(config)
        steps = args.steps
        if config.decoder == "generative":  # the discriminative run's encoder, frozen
            source = path(name.split("-")[0] + "-discriminative")
            encoder_only, _ = VisDialModel.from_checkpoint(source)
            model.encoder.load_state_dict(encoder_only.encoder.state_dict())  # embedding included
            for p in [*model.embedding.parameters(), *model.encoder.parameters()]:
                p.requires_grad_(False)
            steps = args.gen_steps
        start = time.time()
        history = train.fit(model, batches(data.train, 4000), lambda m, b: m.loss(b, data.pool_ids),
                            steps=steps, lr=3e-3, warmup=20, desc=name)
        seconds = time.time() - start
        scores = evaluate(model, data.test, data.pool_ids)
        meta = {"config": {k: getattr(config, k) for k in config.__dataclass_fields__},
                "vocab": data.vocab.itos, "scores": scores, "steps": steps,
                "final_loss": sum(history.loss[-50:]) / 50,
                "frozen_encoder": config.decoder == "generative",
                "notes": f"python scripts/make_visdial_checkpoints.py --steps {args.steps} "
                         f"--gen-steps {args.gen_steps}; "
                         f"{platform.machine()} CPU, 1 thread, torch {torch.__version__}, "
                         f"{seconds:.0f} s"}
        save_model(model, str(path(name)), metadata={k: json.dumps(v) for k, v in meta.items()})
        print(name, f"{seconds:.0f} s", {p: round(s["NDCG"], 3) for p, s in scores.items()},
              flush=True)


if __name__ == "__main__":
    main()
