"""The shipped speaker-embedding model (data/speaker-shapes.safetensors): its scores
recomputed from the stored float16 weights, its recipe, and that it tells held-out voices
apart. Offline, about 20 s."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts import make_speaker as script  # noqa: E402

from mmcourse.models import load_speaker  # noqa: E402

CHECKPOINT = ROOT / "data" / "speaker-shapes.safetensors"


@pytest.fixture(scope="module")
def shipped():
    return load_speaker(CHECKPOINT)


def test_shipped_speaker_model_reproduces_its_scores(shipped):
    assert CHECKPOINT.stat().st_size < 1_000_000
    model, voices, notes = shipped
    assert model.config == script.config() and tuple(voices) == script.VOICES
    assert notes["steps"] == script.STEPS and notes["n_train"] == script.N_TRAIN
    assert "make_speaker.py" in notes["command"] and "--out" not in notes["command"]
    torch.set_num_threads(1)
    scores = {**script.heldout_trials(model),
              "train_voice_accuracy": script.train_accuracy(model)}
    for key, value in notes["scores"].items():
        assert scores[key] == pytest.approx(value, abs=0.01), key  # another machine's rounding
    # voices it never heard: same-voice pairs far more alike than different-voice ones
    assert scores["eer"] < 0.1 and scores["cos_same"] > scores["cos_different"] + 0.3
