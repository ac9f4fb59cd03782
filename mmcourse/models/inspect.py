"""Looking inside a model: a compact module tree with parameter counts, and the parameters split
into named groups (vision encoder, connector, language model, ...).

- ``module_tree(model, depth)`` prints what ``print(model)`` prints in a few lines: each module
  down to ``depth`` levels with its class and parameter count, a ``ModuleList`` of identical
  modules folded into one line (``layers  ModuleList 4 x LlamaDecoderLayer``), and the tensors a
  module holds itself (``query_tokens``).
- ``parameter_split(model, groups)`` counts the parameters of each group of name prefixes and
  refuses a split that misses a parameter or counts one twice.

Both work on models built on the ``meta`` device (no memory), so a real configuration's size can
be counted without its weights. Built in §40.6.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def module_tree(model: nn.Module, depth: int = 2) -> str:
    """The modules of ``model`` down to ``depth`` levels, one line each: indented name, class and
    parameter count. A ``ModuleList`` whose children share one class is one line
    (``4 x IdeficsDecoderLayer``) and is not expanded; leaf modules (``Linear``) are not expanded
    either; parameters any other module holds directly are listed with their shape. Returns the
    text (print it)."""
    if depth < 1:
        raise ValueError(f"expected depth >= 1, got {depth}")
    lines = [f"{type(model).__name__}  {_count(model):,}"]

    def walk(module: nn.Module, level: int) -> None:
        indent = "  " * level
        for name, p in module.named_parameters(recurse=False):
            lines.append(f"{indent}{name}  Parameter {tuple(p.shape)}  {p.numel():,}")
        for name, child in module.named_children():
            kinds = {type(c).__name__ for c in child.children()}
            if isinstance(child, nn.ModuleList) and len(kinds) == 1:
                lines.append(f"{indent}{name}  ModuleList {len(child)} x {kinds.pop()}  "
                             f"{_count(child):,}")
                continue
            lines.append(f"{indent}{name}  {type(child).__name__}  {_count(child):,}")
            if level < depth and next(child.children(), None) is not None:  # not into leaves
                walk(child, level + 1)

    walk(model, 1)
    return "\n".join(lines)


def parameter_split(model: nn.Module, groups: dict[str, Sequence[str]]) -> dict[str, int]:
    """The number of parameters in each group: ``groups`` maps a group's name to the prefixes of
    the parameter names it owns (``"qformer"`` owns ``qformer.layernorm.weight``, not
    ``qformer_x.weight``). Every parameter of ``model`` must belong to exactly one group; a
    ValueError names the ones that do not. Tied parameters count once."""
    counts = {group: 0 for group in groups}
    missing, twice = [], []
    for name, p in model.named_parameters():
        owners = [g for g, prefixes in groups.items()
                  if any(name == pre or name.startswith(pre + ".") for pre in prefixes)]
        if not owners:
            missing.append(name)
        elif len(owners) > 1:
            twice.append(f"{name} ({', '.join(owners)})")
        else:
            counts[owners[0]] += p.numel()
    if missing or twice:
        raise ValueError("expected every parameter in exactly one group; "
                         f"in none: {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
                         f"in several: {twice[:5]}{' ...' if len(twice) > 5 else ''}")
    return counts
