"""The shipped BLIP variants (data/blip-shapes.safetensors) and the script that makes them.

The file must load, be small and reproduce the held-out scores stored in it; the script's code
path (train every variant, score, save) must run. Offline, well under 30 s.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts import make_blip as script  # noqa: E402

from mmcourse.models import BLIPConfig, CaptionTokenizer, load_blips  # noqa: E402

CHECKPOINT = ROOT / "data" / "blip-shapes.safetensors"


def test_shipped_variants_reproduce_their_stored_scores():
    assert CHECKPOINT.stat().st_size < 3_000_000
    models, info = load_blips(CHECKPOINT)
    notes = json.loads(info["notes"])
    assert list(models) == list(script.VARIANTS) == list(notes["scores"])
    tokenizer = CaptionTokenizer.from_checkpoint(script.CLIP_CHECKPOINT)
    assert info["vocab"] == tokenizer.vocab
    assert all(m.config == BLIPConfig(len(tokenizer), tokenizer.eos_token_id)
               for m in models.values())
    assert "make_blip.py --steps" in notes["command"] and notes["threads"] >= 1
    d = script.data(n_scenes=2)  # the held-out scenes; no training data needed
    for name, (use, _) in script.VARIANTS.items():
        scores = script.evaluate(models[name], d, use)
        assert scores.keys() == notes["scores"][name].keys(), name
        for key, value in notes["scores"][name].items():
            assert scores[key] == pytest.approx(value, abs=1e-4), (name, key)


def test_the_script_trains_every_variant_scores_and_saves(tmp_path, monkeypatch):
    out = tmp_path / "blip.safetensors"
    for name, value in (("N_SCENES", 40), ("N_TEST", 24), ("EVAL_EVERY", 3), ("BATCH", 8),
                        ("WARMUP", 1)):
        monkeypatch.setattr(script, name, value)  # tiny: this tests the code path
    script.main(steps=3, out=out)
    models, info = load_blips(out)
    notes = json.loads(info["notes"])
    assert list(models) == list(script.VARIANTS) and notes["recipe"]["steps"] == 3
    assert set(notes["scores"]["itc"]) == {"ITC R@1", "ITC attribute"}
    assert set(notes["scores"]["itc_itm_hard_lm"]) == {"ITC R@1", "ITC attribute",
                                                        "ITM re-ranked R@1", "ITM attribute",
                                                        "CIDEr-D"}
    curves = notes["curves"]["itc_itm_hard_lm"]
    assert set(curves["loss"]) == {"itc", "itm", "lm"} and curves["loss_steps"] == [0]
    assert [step for step, _ in curves["evals"]] == [3]
    assert all(0.0 <= v <= 1.0 for k, v in notes["scores"]["itc_itm_random"].items())


def test_content_groups_ignore_sizes_and_order():
    from mmcourse.data.shapes import ShapesWorld

    scenes = ShapesWorld(seed=0).scenes(200)
    groups = script.content_groups(scenes)
    key = [sorted((o.color, o.shape) for o in s.objects) for s in scenes]
    for i in range(0, 200, 7):
        for j in range(200):
            assert (groups[i] == groups[j]).item() == (key[i] == key[j])
