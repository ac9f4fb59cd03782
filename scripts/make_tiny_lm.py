"""Pretrain the tiny Llama-style language model of §40.4 on ShapesWorld text, and save it to
data/tiny-lm.safetensors (weights, configuration, vocabulary, recipe and the scores below as
metadata).

§40.4 builds ``mmcourse.models.LlamaLM`` and checks it against ``transformers``; §40.5 connects the
§40.1 CLIP image tower to this pretrained LM, as LLaVA connects CLIP to a pretrained Llama. The LM
has only read text: it knows how captions and question-answer pairs are written, and which answers
fit which question (a colour for "what colour", a digit for "how many"), but not what is in any
image — which is what the connector must teach it.

The recipe: ``CONFIG`` (hidden 128, 2 layers, 4 query heads sharing 2 key/value heads, SwiGLU 344,
tied embeddings; about 0.37 M parameters) on the texts of ``n_scenes`` train scenes of
``ShapesWorld(seed=0)``: their five captions and their questions followed by their answers
("question: what colour is the circle? answer: red"), one text per sequence as
``<bos> words <eos>``, tokenized by ``WordTokenizer`` (words, digits, ``,:?``, and the special
tokens ``<image>``, ``<user>``, ``<assistant>`` that §40.4–40.5 use and the LM never reads here). Next-token
cross-entropy on random batches of texts, AdamW, warm-up and cosine decay by
``mmcourse.train.fit``, one CPU thread. Scores (see :func:`evaluate`): per-token perplexity on the
texts of ``N_HELDOUT`` test scenes, against a unigram model (add-one smoothed training-token
frequencies) on the same tokens.

Usage: python scripts/make_tiny_lm.py [--steps 800] [--batch-size 64] [--out PATH]
The shipped file was made by the default command on one CPU thread of this project's 2-core
machine (its ``notes`` metadata holds the command, time and scores). Deterministic for a fixed
number of threads. tests/test_tiny_lm.py reloads the shipped file and recomputes its scores.
Licence: MIT, as the repository (weights we trained on generated data).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse import train, utils  # noqa: E402
from mmcourse.data.instructions import DESCRIBE_PROMPTS  # noqa: E402
from mmcourse.data.lm_text import WordTokenizer, lm_texts  # noqa: E402
from mmcourse.data.shapes import ShapesWorld  # noqa: E402
from mmcourse.models import LlamaConfig, LlamaLM  # noqa: E402

OUT = ROOT / "data" / "tiny-lm.safetensors"
N_HELDOUT = 500  # test scenes whose texts the perplexities are measured on


def tiny_config(vocab_size: int) -> LlamaConfig:
    """The shipped LM's configuration for a vocabulary of ``vocab_size`` words."""
    return LlamaConfig(vocab_size=vocab_size, hidden_size=128, intermediate_size=344,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       tie_word_embeddings=True)


def heldout_texts() -> list[str]:
    """The texts of the first ``N_HELDOUT`` test scenes of ``ShapesWorld(seed=0)``."""
    return lm_texts(ShapesWorld(seed=0).scenes(N_HELDOUT, split="test"))


def unigram_log_probs(tokenizer: WordTokenizer, texts: list[str]) -> torch.Tensor:
    """Add-one smoothed log-frequencies (vocab,) of the tokens a LM predicts in ``texts`` (the
    words and ``<eos>``); ``<pad>`` and ``<bos>`` get none of the mass."""
    counts = Counter(i for t in texts for i in tokenizer.encode(t)[1:])
    predictable = [i for i in range(len(tokenizer))
                   if i not in (tokenizer.pad_token_id, tokenizer.bos_token_id)]
    total = sum(counts.values()) + len(predictable)
    logp = torch.full((len(tokenizer),), -math.inf)
    for i in predictable:
        logp[i] = math.log((counts[i] + 1) / total)
    return logp


@torch.no_grad()
def evaluate(model: LlamaLM, tokenizer: WordTokenizer, train_texts: list[str],
             texts: list[str] | None = None, batch_size: int = 256) -> dict[str, float]:
    """Per-token perplexity of ``model`` and of the unigram model of ``train_texts`` on ``texts``
    (default :func:`heldout_texts`): every word and ``<eos>``, each predicted from what precedes it."""
    model.eval()
    texts = heldout_texts() if texts is None else texts
    nll, n = 0.0, 0
    for k in range(0, len(texts), batch_size):
        batch = tokenizer(texts[k: k + batch_size])
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        targets = batch["input_ids"][:, 1:]  # (B, L-1), 0 = padding
        nll += F.cross_entropy(logits[:, :-1].flatten(0, 1).double(), targets.flatten(),
                               ignore_index=tokenizer.pad_token_id, reduction="sum").item()
        n += int((targets != tokenizer.pad_token_id).sum())
    logp = unigram_log_probs(tokenizer, train_texts)
    uni = -sum(logp[i].item() for t in texts for i in tokenizer.encode(t)[1:])
    return {"perplexity": math.exp(nll / n), "unigram perplexity": math.exp(uni / n),
            "tokens": n}


def train_lm(steps: int, batch_size: int = 64, n_scenes: int = 4000, lr: float = 3e-3,
             warmup: int = 100, progress: bool = True
             ) -> tuple[LlamaLM, WordTokenizer, list[str], train.History]:
    """Train the tiny LM as the module docstring says; returns it in eval mode, its tokenizer,
    its training texts and the training history."""
    texts = lm_texts(ShapesWorld(seed=0).scenes(n_scenes))
    # the vocabulary also holds the words of §40.5's instructions, which the LM never reads here
    tokenizer = WordTokenizer.from_texts(texts + list(DESCRIBE_PROMPTS))
    ids = tokenizer(texts)["input_ids"]  # (N, L), right-padded
    utils.seed_everything(0)
    model = LlamaLM(tiny_config(len(tokenizer)))

    def batch(step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(step)
        rows = ids[torch.randint(0, len(texts), (batch_size,), generator=g)]  # (B, L)
        return rows[:, : int((rows != 0).sum(1).max())]  # drop all-padding columns

    def loss_fn(m: LlamaLM, b: torch.Tensor) -> torch.Tensor:
        logits = m(b, attention_mask=(b != 0).long()).logits  # (B, L, V)
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), b[:, 1:].flatten(),
                               ignore_index=tokenizer.pad_token_id)

    history = train.fit(model, batch, loss_fn, steps=steps, lr=lr, weight_decay=0.1,
                        warmup=warmup, desc="tiny LM", progress=progress)
    return model.eval(), tokenizer, texts, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-scenes", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    utils.seed_everything(0)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model, tokenizer, texts, history = train_lm(args.steps, args.batch_size, args.n_scenes)
    seconds = time.perf_counter() - start
    scores = evaluate(model, tokenizer, texts)
    last = history.loss[-100:]
    notes = {"scores": scores, "final loss (mean of the last 100 steps)": sum(last) / len(last),
             "parameters": sum(p.numel() for p in model.parameters()),
             "recipe": {"steps": args.steps, "batch_size": args.batch_size,
                        "n_scenes": args.n_scenes, "world": "ShapesWorld(seed=0)",
                        "heldout": f"first {N_HELDOUT} test scenes", "lr": 3e-3, "warmup": 100,
                        "weight_decay": 0.1, "config": asdict(model.config)},
             "command": utils.script_command(__file__, sys.argv[1:], OUT),
             "threads": args.threads, "seconds": round(seconds, 1),
             "torch": torch.__version__, "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save_checkpoint(args.out, tokenizer, notes=json.dumps(notes))
    print(json.dumps(notes, indent=1))


if __name__ == "__main__":
    main()
