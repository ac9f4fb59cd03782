"""mmcourse.vqa: prompts, the answer-only loss mask, batches and VQA scoring of a language model
(with or without images). Tiny models, offline, a few seconds."""
from __future__ import annotations

import pytest
import torch

from mmcourse import vqa
from mmcourse.data.instructions import DESCRIBE_PROMPTS
from mmcourse.data.lm_text import WordTokenizer, lm_texts
from mmcourse.data.shapes import ShapesWorld
from mmcourse.models import CLIPVisionTower, LLaVA, LlamaConfig, LlamaLM, MLPProjector, ViTConfig


@pytest.fixture(scope="module")
def world():
    scenes = ShapesWorld(seed=0).scenes(12)
    tok = WordTokenizer.from_texts(lm_texts(scenes) + list(DESCRIBE_PROMPTS))
    return scenes, tok


def test_prompts_and_the_answer_mask(world):
    _, tok = world
    qa = vqa.prompt_text("what colour is the circle?", 2, "qa", "red")
    chat = vqa.prompt_text("what colour is the circle?", 2, "chat", "red")
    assert qa == "<image> <image> question: what colour is the circle? answer: red"
    assert chat == "<user> <image> <image> what colour is the circle? <assistant> red"
    for fmt, text in (("qa", qa), ("chat", chat)):
        ids, _ = vqa.left_pad([tok.encode(text), tok.encode(text)[:5]])
        mask = vqa.response_mask(ids, tok, fmt)
        assert tok.decode(ids[0][mask[0]]) == "red" and int(mask[0].sum()) == 2  # red, <eos>
        assert not mask[1].any()  # a cut prompt has no answer, and padding is never a target
    assert vqa.prompt_text("how many?", 0) == "question: how many? answer:"
    with pytest.raises(ValueError, match="unknown format"):
        vqa.prompt_text("q", 1, "json")


def test_left_pad():
    ids, mask = vqa.left_pad([[5, 6, 7], [8]])
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_batches_loss_and_scores_with_a_tiny_vlm(world):
    scenes, tok = world
    torch.manual_seed(0)
    tower = CLIPVisionTower(ViTConfig(image_size=64, patch_size=16, hidden_size=16,
                                      num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=32, hidden_act="quick_gelu"))
    lm = LlamaLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=48))
    vlm = LLaVA(tower, MLPProjector(16, 32), lm, tok.image_token_id)
    features = torch.randn(len(scenes), 16, 16)
    batches = vqa.Batches(vqa.qa_examples(scenes, 16), features, tok, batch_size=8)
    ids, mask, feats, targets = batches(3)
    assert feats.shape == (8, 16, 16) and ids.shape == mask.shape == targets.shape
    assert torch.equal(batches(3)[0], ids)  # seeded by the step
    assert int((ids == tok.image_token_id).sum()) == 8 * 16
    loss = vqa.batch_loss(vlm, batches(3))
    assert loss.item() == pytest.approx(torch.log(torch.tensor(float(len(tok)))).item(), rel=0.3)
    scores, predictions = vqa.score_vqa(vlm, tok, scenes, features, 16)
    assert set(scores) == {"overall", "colour", "shape", "count", "existence", "relation"}
    assert len(predictions) == sum(len(s.qa) for s in scenes) and 0 <= scores["overall"] <= 1
    blind, _ = vqa.score_vqa(lm, tok, scenes, None, 0)
    assert set(blind) == set(scores)
    with pytest.raises(ValueError, match="features has 3 scenes"):
        vqa.Batches(vqa.qa_examples(scenes, 16), features[:3], tok)
    blind_batch = vqa.Batches(vqa.chat_examples(scenes, 0), None, tok, "chat", 4)(0)
    assert blind_batch[2] is None and vqa.batch_loss(lm, blind_batch).item() > 0


def test_caption_and_chat_examples(world):
    scenes, tok = world
    captions = vqa.caption_examples(scenes, 2)
    assert len(captions) == 5 * len(scenes) and captions[0][1].startswith("<image> <image> ")
    ids, _ = vqa.left_pad([tok.encode(captions[0][1])])
    mask = vqa.response_mask(ids, tok, "caption")
    assert tok.decode(ids[0][mask[0]]) == scenes[0].captions[0].replace(",", " ,").lower()
    chats = vqa.chat_examples(scenes, 2, per_scene=3)
    assert len(chats) == 3 * len(scenes) and all(t.startswith("<user> <image> <image> ")
                                                  for _, t in chats)
