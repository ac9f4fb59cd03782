"""The shipped vision-language checkpoints of §40.4 and §40.5 and the scripts that make them.

data/vlm-connectors.safetensors (four connectors between the frozen CLIP tower and the frozen
tiny LM) and data/vlm-llava.safetensors (the tiny LLaVA and its blind baseline) must load, stay
small and reproduce the scores stored in them; each script's code path (train, score, save) must
run on a tiny budget. Offline, about half a minute.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts import make_connectors, make_vlm  # noqa: E402

from mmcourse import vqa  # noqa: E402
from mmcourse.data.shapes import ShapesWorld  # noqa: E402
from mmcourse.models import CONNECTORS, load_connectors, load_llava, read_notes  # noqa: E402

CONNECTORS_FILE = ROOT / "data" / "vlm-connectors.safetensors"
LLAVA_FILE = ROOT / "data" / "vlm-llava.safetensors"


def test_shipped_connectors_reproduce_their_stored_scores():
    assert CONNECTORS_FILE.stat().st_size < 2_500_000
    clip, lm, tokenizer = make_connectors.frozen_parts()
    models, notes = load_connectors(CONNECTORS_FILE, clip.vision, lm, tokenizer.image_token_id)
    assert list(models) == list(CONNECTORS) == list(notes["scores"])
    assert "make_connectors.py" in notes["command"] and notes["threads"] >= 1
    scenes, features = make_connectors.test_data(clip)
    for kind, (model, tokens) in models.items():
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == \
            notes["trainable"][kind]
        scores = vqa.score_vqa(model, tokenizer, scenes, features, tokens)[0]
        for key, value in notes["scores"][kind].items():
            assert scores[key] == pytest.approx(value, abs=1e-6), (kind, key)


def test_shipped_llava_reproduces_its_stored_scores_and_beats_blind():
    assert LLAVA_FILE.stat().st_size < 4_000_000
    clip, _, tokenizer = make_vlm.load_parts()
    models, notes = load_llava(LLAVA_FILE, clip.vision, make_vlm.LM_FILE, tokenizer.image_token_id)
    assert list(models) == list(make_vlm.MODELS) and "make_vlm.py" in notes["command"]
    d = make_vlm.data(clip, notes["config"]["layer"], n_train=1, n_test=notes["recipe"]["n_test"])
    tokens = notes["config"]["visual tokens"]
    stored = notes["scores"]
    for name, model in models.items():
        scores = make_vlm.scores(model, tokenizer, d, None if name == "blind" else tokens)
        for split in ("test", "heldout"):
            for key, value in stored[name][split].items():
                assert scores[split][key] == pytest.approx(value, abs=1e-6), (name, split, key)
    test = stored["llava"]["test"]
    assert test["overall"] >= 0.80
    assert all(test[t] > stored["blind"]["test"][t] for t in test if t != "overall")
    assert test["overall"] > stored["frozen"]["test"]["overall"]


def test_make_connectors_trains_scores_and_saves(tmp_path, monkeypatch):
    out = tmp_path / "connectors.safetensors"
    monkeypatch.setattr(make_connectors, "N_TEST", 6)
    monkeypatch.setattr(make_connectors, "BATCH", 4)
    monkeypatch.setattr(sys, "argv", ["make_connectors.py", "--steps", "2", "--n-train", "12",
                                      "--out", str(out)])
    make_connectors.main()
    clip, lm, tokenizer = make_connectors.frozen_parts()
    models, notes = load_connectors(out, clip.vision, lm, tokenizer.image_token_id)
    assert list(models) == list(CONNECTORS) and notes["recipe"]["steps"] == 2
    assert set(notes["scores"]["linear"]) == {"overall", "colour", "shape", "count", "existence",
                                               "relation"}


def test_make_vlm_trains_both_stages_and_the_blind_baseline(tmp_path, monkeypatch):
    out = tmp_path / "llava.safetensors"
    monkeypatch.setattr(make_vlm, "BATCH", 4)
    monkeypatch.setattr(sys, "argv", ["make_vlm.py", "--stage1", "2", "--stage2", "2",
                                      "--eval-every", "1", "--n-train", "12", "--n-test", "5",
                                      "--out", str(out)])
    make_vlm.main()
    clip, _, tokenizer = make_vlm.load_parts()
    models, notes = load_llava(out, clip.vision, make_vlm.LM_FILE, tokenizer.image_token_id)
    stages = {"stage 1", "stage 2", "stage 2 accuracy", "stage 2 seconds per step"}
    assert set(notes["curves"]) == stages | {f"frozen {k}" for k in stages} | {"blind"}
    assert notes["recipe"]["stage2"] == 2 and list(notes["scores"]) == list(make_vlm.MODELS)
    vlm = models["llava"]
    # the frozen model's LM is the pretrained one; the LLaVA's has moved
    pretrained = make_vlm.load_parts()[1].state_dict()
    assert all(torch.equal(v, pretrained[k])
               for k, v in models["frozen"].language_model.state_dict().items())
    assert not all(torch.equal(v, pretrained[k])
                   for k, v in vlm.language_model.state_dict().items())
    assert read_notes(out) == notes
    scenes = ShapesWorld(seed=0).scenes(2, split="test")
    assert len(vqa.answer_questions(vlm, tokenizer, [scenes[0].qa[0].question],
                                    vqa.tower_features(clip, scenes[:1]), 16, "chat")) == 1


def test_make_vlm_subsets_merged_equal_the_full_run(tmp_path, monkeypatch):
    """Each model is seeded on its own, so two runs on --models subsets, merged, write the same
    tensors and scores as one run of all three (how the shipped file was made)."""
    monkeypatch.setattr(make_vlm, "BATCH", 4)
    common = ["--stage1", "2", "--stage2", "3", "--eval-every", "0", "--n-train", "12",
              "--n-test", "4"]
    for name, models in (("full", "llava,frozen,blind"), ("a", "llava,blind"), ("b", "frozen")):
        monkeypatch.setattr(sys, "argv", ["make_vlm.py", *common, "--models", models,
                                          "--out", str(tmp_path / f"{name}.safetensors")])
        make_vlm.main()
    monkeypatch.setattr(sys, "argv", ["make_vlm.py", "--merge", str(tmp_path / "b.safetensors"),
                                      str(tmp_path / "a.safetensors"),
                                      "--out", str(tmp_path / "merged.safetensors")])
    make_vlm.main()
    from safetensors.torch import load_file
    full, merged = (load_file(str(tmp_path / f"{n}.safetensors")) for n in ("full", "merged"))
    assert list(full) == list(merged) and all(torch.equal(full[k], merged[k]) for k in full)
    full_notes, merged_notes = (read_notes(tmp_path / f"{n}.safetensors") for n in ("full", "merged"))
    assert merged_notes["scores"] == full_notes["scores"]
    assert list(merged_notes["scores"]) == list(make_vlm.MODELS)
    assert {k: v for k, v in merged_notes["curves"].items() if "seconds" not in k} == \
        {k: v for k, v in full_notes["curves"].items() if "seconds" not in k}
    assert "--merge" in merged_notes["command"] and "--models frozen" in merged_notes["command"]
    monkeypatch.setattr(sys, "argv", ["make_vlm.py", "--merge", str(tmp_path / "a.safetensors"),
                                      str(tmp_path / "full.safetensors")])
    with pytest.raises(SystemExit, match="more than one part"):
        make_vlm.main()
