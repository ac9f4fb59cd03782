"""The shipped tiny LM (data/tiny-lm.safetensors), the script that makes it, its tokenizer and
corpus (mmcourse.data.lm_text) and LlamaLM's checkpoint round trip. Offline, well under 30 s."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts import make_tiny_lm as script  # noqa: E402

from mmcourse.data.lm_text import WordTokenizer, lm_texts, qa_text  # noqa: E402
from mmcourse.data.shapes import ShapesWorld  # noqa: E402
from mmcourse.models import LlamaConfig, LlamaLM  # noqa: E402

CHECKPOINT = ROOT / "data" / "tiny-lm.safetensors"


def _notes(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["notes"])


def test_shipped_lm_reproduces_its_perplexity_and_beats_the_unigram_baseline():
    assert CHECKPOINT.stat().st_size < 3_000_000
    model, tokenizer = LlamaLM.from_checkpoint(CHECKPOINT), WordTokenizer.from_checkpoint(CHECKPOINT)
    assert model.config == script.tiny_config(len(tokenizer))
    notes = _notes(CHECKPOINT)
    recipe = notes["recipe"]
    assert 200_000 <= notes["parameters"] == sum(p.numel() for p in model.parameters()) <= 500_000
    train_texts = lm_texts(ShapesWorld(seed=0).scenes(recipe["n_scenes"]))
    scores = script.evaluate(model, tokenizer, train_texts)
    for key, value in notes["scores"].items():
        assert scores[key] == pytest.approx(value, abs=1e-3), key
    assert scores["perplexity"] < 0.5 * scores["unigram perplexity"]
    assert "make_tiny_lm.py" in notes["command"]


def test_shipped_lm_answers_a_colour_question_with_a_colour():
    model, tokenizer = LlamaLM.from_checkpoint(CHECKPOINT), WordTokenizer.from_checkpoint(CHECKPOINT)
    prompt = torch.tensor([tokenizer.encode("question: what colour is the circle? answer:")[:-1]])
    answer = tokenizer.decode(model.generate(prompt, 1)[0, -1:])
    assert answer in ("red", "green", "blue", "yellow", "purple", "orange")


def test_the_script_trains_scores_and_saves(tmp_path, monkeypatch):
    out = tmp_path / "lm.safetensors"
    monkeypatch.setattr(script, "N_HELDOUT", 5)
    monkeypatch.setattr(sys, "argv", ["make_tiny_lm.py", "--steps", "3", "--batch-size", "8",
                                      "--n-scenes", "20", "--out", str(out)])
    script.main()
    model, tokenizer = LlamaLM.from_checkpoint(out), WordTokenizer.from_checkpoint(out)
    notes = _notes(out)
    assert notes["recipe"]["steps"] == 3 and model.config.vocab_size == len(tokenizer)
    assert set(notes["scores"]) == {"perplexity", "unigram perplexity", "tokens"}
    assert notes["scores"]["perplexity"] > 1.0


def test_checkpoint_round_trip_keeps_logits_and_rejects_other_files(tmp_path):
    torch.manual_seed(0)
    for tied in (False, True):
        model = LlamaLM(LlamaConfig(vocab_size=11, hidden_size=16, intermediate_size=24,
                                    num_attention_heads=2, num_key_value_heads=1,
                                    tie_word_embeddings=tied)).eval()
        model.save_checkpoint(tmp_path / "m.safetensors", notes="hi")
        loaded = LlamaLM.from_checkpoint(tmp_path / "m.safetensors")
        ids = torch.randint(0, 11, (2, 5))
        assert loaded.config == model.config
        assert torch.equal(loaded(ids).logits, model(ids).logits)
        assert (loaded.lm_head.weight is loaded.embed_tokens.weight) == tied
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="no LlamaConfig"):
        LlamaLM.from_checkpoint(tmp_path / "other.safetensors")


def test_corpus_and_tokenizer_keep_questions_and_digits():
    scenes = ShapesWorld(seed=0).scenes(3)
    texts = lm_texts(scenes)
    assert texts[:5] == scenes[0].captions
    n_questions = sum(len(s.qa) for s in scenes)
    assert len(texts) == 15 + 2 * n_questions
    in_context = texts[15 + n_questions]  # a caption, then a question about the same scene
    assert in_context.startswith(scenes[0].captions[0] + " question: ")
    assert in_context.endswith("answer: " + scenes[0].qa[0].answer)
    assert qa_text("how many stars are there?", "0") == "question: how many stars are there? answer: 0"
    tokenizer = WordTokenizer.from_texts(texts + ["question: how many? answer: 3"])
    ids = tokenizer.encode("question: how many? answer: 3")
    assert tokenizer.decode(ids) == "question : how many ? answer : 3"
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.vocab[-2:] == ["<bos>", "<eos>"] and tokenizer.vocab[:2] == ["<pad>", "<unk>"]
