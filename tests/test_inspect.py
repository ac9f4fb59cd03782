"""Tests for mmcourse.models.inspect: the compact module tree and the parameter split."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mmcourse.models import module_tree, parameter_split


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.zeros(1, 3, 4))
        self.encoder = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 4))
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
        self.mixed = nn.ModuleList([nn.Linear(4, 2), nn.LayerNorm(2)])
        self.head = nn.Linear(4, 7, bias=False)


def test_module_tree_lines_and_counts():
    model = Toy()
    lines = module_tree(model, depth=2).splitlines()
    total = sum(p.numel() for p in model.parameters())
    assert lines[0] == f"Toy  {total:,}"
    assert "  queries  Parameter (1, 3, 4)  12" in lines
    assert "  layers  ModuleList 3 x Linear  60" in lines  # folded, not expanded
    assert "    0  Linear  20" not in lines  # the folded list's layers are not listed
    assert "  encoder  Sequential  49" in lines and "    0  Linear  25" in lines
    assert "  mixed  ModuleList  14" in lines and "    1  LayerNorm  4" in lines
    assert len(module_tree(model, depth=1).splitlines()) == 6  # no grandchildren
    with pytest.raises(ValueError, match="depth >= 1"):
        module_tree(model, depth=0)


def test_parameter_split_counts_every_parameter_once():
    model = Toy()
    split = parameter_split(model, {"enc": ["encoder"], "bridge": ["queries", "layers", "mixed"],
                                    "out": ["head"]})
    assert split == {"enc": 49, "bridge": 12 + 60 + 14, "out": 28}
    assert sum(split.values()) == sum(p.numel() for p in model.parameters())


def test_parameter_split_prefixes_match_whole_names():
    model = Toy()
    with pytest.raises(ValueError, match=r"in none: \['encoder.0.weight'"):
        parameter_split(model, {"a": ["enc"], "b": ["queries", "layers", "mixed", "head"]})
    with pytest.raises(ValueError, match=r"head.weight \(a, b\)"):
        parameter_split(model, {"a": ["encoder", "head"], "b": ["queries", "layers", "mixed",
                                                                 "head"]})


def test_parameter_split_on_meta_device_and_tied_weights():
    with torch.device("meta"):
        model = nn.Sequential(nn.Embedding(10, 6), nn.Linear(6, 10, bias=False))
    model[1].weight = model[0].weight  # tied: counted once
    assert parameter_split(model, {"all": ["0", "1"]}) == {"all": 60}


def test_module_tree_does_not_expand_leaves():
    lines = module_tree(Toy(), depth=3).splitlines()
    assert "  head  Linear  28" in lines and not any("weight" in line for line in lines)
