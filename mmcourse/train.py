"""A small, explicit training loop: fixed number of steps, progress bar, loss history.

The loop is deliberately plain PyTorch so a reader sees every step; notebooks that teach a
training trick write their own loop and say why. Built in §39.1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import cycle
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from mmcourse.utils import model_device, to_device


@dataclass
class History:
    """What a run of :func:`fit` recorded: the loss at every step and evaluations along the way."""

    loss: list[float] = field(default_factory=list)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)

    def eval_curve(self, key: str) -> tuple[list[int], list[float]]:
        """Steps and values of one evaluation metric, for plotting."""
        if self.evals and key not in self.evals[0][1]:
            raise ValueError(f"unknown metric {key!r}; recorded: {', '.join(self.evals[0][1])}")
        return [s for s, _ in self.evals], [m[key] for _, m in self.evals]

    def smoothed(self, window: int = 20) -> list[float]:
        """The loss averaged over a trailing window, which is what a reader wants to look at."""
        out, total = [], 0.0
        for i, v in enumerate(self.loss):
            total += v
            if i >= window:
                total -= self.loss[i - window]
            out.append(total / min(i + 1, window))
        return out


def fit(
    model: torch.nn.Module,
    batches: Iterable | Callable[[int], object],
    loss_fn: Callable[[torch.nn.Module, object], torch.Tensor],
    steps: int,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    weight_decay: float = 0.0,
    warmup: int = 0,
    grad_clip: float | None = 1.0,
    eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    eval_every: int | None = None,
    desc: str = "training",
    progress: bool = True,
) -> History:
    """Train ``model`` for exactly ``steps`` optimiser steps and return the :class:`History`.

    Args:
        batches: an iterable of batches (cycled if shorter than ``steps``) or a function
            ``step -> batch`` that makes each batch on the fly.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``. Each batch is first moved to the
            model's device (:func:`mmcourse.utils.to_device`), so batches may be made on the CPU.
        lr, weight_decay: AdamW's settings when no ``optimizer`` is given; the learning rate warms
            up linearly for ``warmup`` steps and then follows a cosine decay to 10 %.
        eval_fn, eval_every: ``eval_fn(model) -> {name: value}`` called every ``eval_every`` steps and
            at the end, with the model in eval mode and gradients off.
    """
    if steps <= 0:
        raise ValueError(f"steps must be a positive int; got {steps!r}")
    if eval_every is not None and eval_fn is None:
        raise ValueError("eval_every was given without an eval_fn")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    opt = optimizer or torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * t)).item())

    device = model_device(model)
    source = batches if callable(batches) else cycle(batches)
    history = History()
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False, mininterval=0.5)
    for step in bar:
        batch = source(step) if callable(source) else next(source)
        batch = to_device(batch, device)  # batches may be made on the CPU; the model may not be
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * lr_factor(step)
        loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; try a smaller lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        history.loss.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{history.smoothed()[-1]:.3f}")
        last = step == steps - 1
        if eval_fn is not None and ((eval_every and (step + 1) % eval_every == 0) or last):
            history.evals.append((step + 1, evaluate(model, eval_fn)))
            model.train()
    model.eval()
    return history


@torch.no_grad()
def evaluate(model: torch.nn.Module, eval_fn: Callable[[torch.nn.Module], dict[str, float]]) -> dict[str, float]:
    """Run ``eval_fn(model)`` in eval mode without gradients; return its metrics as floats."""
    was_training = model.training
    model.eval()
    try:
        return {k: float(v) for k, v in eval_fn(model).items()}
    finally:
        model.train(was_training)
