"""The shipped visual dialogue checkpoints (data/visdial-*.safetensors, §40.3) load and reproduce
the held-out scores stored in them."""
from pathlib import Path

import pytest
import torch

from mmcourse.data.dialogue import make_visdial
from mmcourse.models import VisDialModel
from scripts.make_visdial_checkpoints import MODELS, evaluate, path


@pytest.fixture(scope="module")
def data():
    return make_visdial(1000)


@pytest.mark.parametrize("name", list(MODELS))
def test_checkpoint_reproduces_its_scores(data, name):
    if not path(name).exists():
        pytest.skip(f"{path(name).name} is not shipped")
    model, meta = VisDialModel.from_checkpoint(path(name))
    assert meta["vocab"] == data.vocab.itos
    test = data.test.select(torch.arange(800))  # the first 100 dialogues
    scores = evaluate(model, test, data.pool_ids)
    full = evaluate(model, data.test, data.pool_ids) if name.endswith("discriminative") else None
    for part in ("all", "history", "image"):
        if full is not None:
            for metric in ("MRR", "R@1", "NDCG", "mean rank"):
                assert abs(full[part][metric] - meta["scores"][part][metric]) < 1e-3, (part, metric)
        assert scores[part]["NDCG"] > 0.3


def test_shipped_checkpoints_are_small():
    files = list(Path(path("x")).parent.glob("visdial-*.safetensors"))
    assert sum(f.stat().st_size for f in files) < 3e6
