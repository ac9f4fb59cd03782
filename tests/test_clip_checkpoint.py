"""The shipped CLIP checkpoint (data/clip-shapes.safetensors) and the script that makes it.

The checkpoint must load, meet §40.1's targets on held-out scenes and reproduce the scores stored
in it; the script's code path (train, score, save) must run. Offline, a few seconds.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts import make_clip_checkpoint as script  # noqa: E402

from mmcourse.models import CLIP, CaptionTokenizer, CLIPConfig  # noqa: E402

CHECKPOINT = ROOT / "data" / "clip-shapes.safetensors"


def test_shipped_checkpoint_meets_the_targets_and_reproduces_its_stored_scores():
    assert CHECKPOINT.stat().st_size < 5_000_000
    model, tokenizer = CLIP.from_checkpoint(CHECKPOINT), CaptionTokenizer.from_checkpoint(CHECKPOINT)
    assert model.config == CLIPConfig.tiny(len(tokenizer), tokenizer.eos_token_id, script.MAX_LENGTH)
    with safe_open(str(CHECKPOINT), framework="pt") as f:
        notes = json.loads(f.metadata()["notes"])
    scores = script.evaluate(model, tokenizer)
    assert scores["zero-shot accuracy"] >= 0.9  # §40.1's targets on held-out scenes
    assert scores["text->image R@5"] >= 0.8
    assert scores.keys() == notes["scores"].keys()
    for key, value in notes["scores"].items():
        assert scores[key] == pytest.approx(value, abs=1e-6), key
    assert "make_clip_checkpoint.py --steps 5000" in notes["command"]


def test_the_script_trains_scores_and_saves(tmp_path, monkeypatch):
    out = tmp_path / "clip.safetensors"
    for name, value in (("N_TEST", 60), ("N_HELDOUT", 60), ("N_RETRIEVAL", 20)):
        monkeypatch.setattr(script, name, value)  # small held-out sets: this tests the code path
    monkeypatch.setattr(sys, "argv", ["make_clip_checkpoint.py", "--steps", "3", "--batch-size",
                                      "8", "--n-scenes", "24", "--device", "cpu",
                                      "--eval-every", "3", "--out", str(out)])
    script.main()
    model, tokenizer = CLIP.from_checkpoint(out), CaptionTokenizer.from_checkpoint(out)
    with safe_open(str(out), framework="pt") as f:
        notes = json.loads(f.metadata()["notes"])
    assert notes["device"] == "cpu" and [step for step, _ in notes["evals"]] == [3]
    assert set(notes["scores"]) == {"zero-shot accuracy", "zero-shot accuracy (held-out pairs)"} | {
        f"{d} R@{k}" for d in ("image->text", "text->image") for k in (1, 5, 10)}
    assert all(0.0 <= v <= 1.0 for v in notes["scores"].values())
    assert len(tokenizer) == model.config.text.vocab_size


def test_training_scenes_mix_single_object_and_busy_scenes():
    scenes = script.training_scenes(10)
    assert [len(s.objects) for s in scenes[:5]] == [1] * 5
    assert max(len(s.objects) for s in scenes[5:]) > 1
    assert len(script.CLASSES) == 30 and all("{}" in t for t in script.TEMPLATES)
