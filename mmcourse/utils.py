"""Small utilities every notebook uses: seeding, the device, thread count, parameter counts.

Built in §39.1.
"""
from __future__ import annotations

import dataclasses
import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch so that a notebook gives the same numbers run to run.

    Returns a ``torch.Generator`` seeded with ``seed`` for code that wants its own stream.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``cuda`` if present, else Apple's ``mps``, else ``cpu``.

    ``prefer`` (or the environment variable ``MMCOURSE_DEVICE``) forces one, e.g. ``"cpu"``.
    """
    choice = prefer or os.environ.get("MMCOURSE_DEVICE")
    if choice:
        allowed = ("cpu", "cuda", "mps")
        if choice.split(":")[0] not in allowed:
            raise ValueError(f"unknown device {choice!r}; allowed values: {', '.join(allowed)}")
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model with neither.
    Evaluation helpers of the package put their inputs there."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def to_device(obj: Any, device: torch.device | str) -> Any:
    """``obj`` with every tensor in it moved to ``device``: tensors, and the tuples, lists, dicts
    and dataclasses (or anything with a ``.to``, such as a ``BatchEncoding``) that hold them.
    Anything else comes back as it is; a tensor already on ``device`` is not copied."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return type(obj)({k: to_device(v, device) for k, v in obj.items()})
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
        return type(obj)(*(to_device(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: to_device(getattr(obj, f.name), device)
                                           for f in dataclasses.fields(obj) if f.init})
    if hasattr(obj, "to") and callable(obj.to) and not isinstance(obj, torch.nn.Module):
        return obj.to(device)
    return obj


def setup(seed: int = 0, threads: int | None = None) -> torch.device:
    """What the first code cell of every notebook calls: seed everything, cap the CPU threads
    (``MMCOURSE_THREADS`` or 2 by default, the book's budget machine), set the book's figure style
    (:func:`mmcourse.viz.book_style`), make the notebook's checks speak to a reader
    (:func:`mmcourse.checks.install`), keep GPUs in full float32 (no TF32) and return the
    device."""
    from mmcourse.checks import install
    from mmcourse.viz import book_style  # here: importing matplotlib is not free

    book_style()
    install()
    n = threads or int(os.environ.get("MMCOURSE_THREADS", "2"))
    torch.set_num_threads(n)
    seed_everything(seed)
    # full float32 on GPUs: TF32 convolutions (cuDNN's default) would miss the 1e-5 equivalences
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return device()


def scale() -> float:
    """The training-size multiplier ``MMCOURSE_SCALE`` (default 1: the CPU budget of the book)."""
    value = float(os.environ.get("MMCOURSE_SCALE", "1"))
    if value <= 0:
        raise ValueError(f"MMCOURSE_SCALE must be positive; got {value}")
    return value


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters of ``model`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def script_command(script: str, argv: list[str], default_out: str | os.PathLike) -> str:
    """The command a reader runs from the repository root to make a shipped file again, as the
    ``make_*.py`` scripts store it beside the weights: ``python scripts/NAME.py ARGS``, with an
    ``--out`` that names the shipped file dropped (it is the default) and any other ``--out``
    reduced to the file's name (a scratch folder of the machine that made it means nothing to a
    reader)."""
    from pathlib import Path

    args, k = [], 0
    while k < len(argv):
        arg = argv[k]
        if arg == "--out" or arg.startswith("--out="):
            value = arg.split("=", 1)[1] if "=" in arg else (argv[k + 1] if k + 1 < len(argv) else "")
            k += 1 if "=" in arg else 2
            if Path(value).name != Path(default_out).name:
                args += ["--out", Path(value).name]
            continue
        args.append(arg)
        k += 1
    return " ".join(["python", f"scripts/{Path(script).name}", *args])
