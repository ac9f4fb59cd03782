"""mmcourse.models.vlm (LLaVA, FlamingoVLM, the connectors), the per-token media mask of
GatedCrossAttentionBlock, and the instruction data and chat template of mmcourse.data.instructions.
Tiny random configurations, offline, a few seconds."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration
from transformers import LlamaConfig as HFLlamaConfig

from mmcourse.data.instructions import DESCRIBE_PROMPTS, assistant_mask, chat_text, conversation
from mmcourse.data.lm_text import WordTokenizer
from mmcourse.data.shapes import ShapesWorld
from mmcourse.models import (CLIPVisionTower, FlamingoVLM, LLaVA, LlamaConfig, LlamaLM,
                             connector_model, load_trainable, trainable_state,
                             MLPProjector, PatchMerger, QFormerConnector, ViTConfig)

IMAGE = 97  # the placeholder id in the transformers configs below


def _hf_llava(strategy: str = "default", layer: int = -2, kv_heads: int = 2, act: str = "gelu",
              image_size: int = 32, patch: int = 8, seed: int = 0) -> LlavaForConditionalGeneration:
    torch.manual_seed(seed)
    vision = CLIPVisionConfig(image_size=image_size, patch_size=patch, hidden_size=32,
                              intermediate_size=64, num_hidden_layers=3, num_attention_heads=4)
    text = HFLlamaConfig(vocab_size=100, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=kv_heads, pad_token_id=0)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=IMAGE,
                         vision_feature_layer=layer, vision_feature_select_strategy=strategy,
                         projector_hidden_act=act)
    return LlavaForConditionalGeneration(config).eval()


def _prompt(rows: list[list[int]], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad each row to ``length``: ids and attention mask (B, length)."""
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, row in enumerate(rows):
        ids[r, length - len(row):] = torch.tensor(row)
        mask[r, length - len(row):] = 1
    return ids, mask


@pytest.mark.parametrize("strategy, layer, kv_heads, act, size, patch", [
    ("default", -2, 2, "gelu", 32, 8),      # LLaVA-1.5's choice, grouped-query attention
    ("full", -1, 4, "quick_gelu", 24, 6),  # [CLS] kept, the last layer, multi-head attention
    ("default", -3, 1, "relu", 16, 4),      # multi-query attention, 16 patches
])
def test_llava_matches_transformers_with_padding_and_several_images(strategy, layer, kv_heads, act,
                                                                    size, patch):
    reference = _hf_llava(strategy, layer, kv_heads, act, size, patch)
    ours = LLaVA.from_transformers(reference)
    tokens = (size // patch) ** 2 + (strategy == "full")
    g = torch.Generator().manual_seed(1)

    def words(n: int) -> list[int]:
        return torch.randint(1, 90, (n,), generator=g).tolist()

    rows = [words(2) + [IMAGE] * tokens + words(5) + [IMAGE] * tokens + words(3),  # two images
            words(1) + [IMAGE] * tokens + words(2)]                                    # one image
    ids, mask = _prompt(rows, max(len(r) for r in rows))
    pixels = torch.randn(3, 3, size, size, generator=g)  # row 0's two images, then row 1's
    expected = reference(input_ids=ids, pixel_values=pixels, attention_mask=mask).logits
    got = ours(input_ids=ids, pixel_values=pixels, attention_mask=mask).logits
    real = mask.bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5)


def test_llava_generation_with_the_cache_equals_transformers_generate():
    reference = _hf_llava()
    ours = LLaVA.from_transformers(reference)
    ids = torch.tensor([[5, 6] + [IMAGE] * 16 + [7, 8, 9]])
    pixels = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    expected = reference.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=6,
                                  do_sample=False)
    assert torch.equal(ours.generate(ids, 6, pixel_values=pixels), expected)


def test_llava_errors_and_precomputed_features():
    ours = LLaVA.from_transformers(_hf_llava())
    ids = torch.tensor([[5] + [IMAGE] * 16 + [7]])
    pixels = torch.randn(1, 3, 32, 32)
    features = ours.vision_features(pixels)
    assert features.shape == (1, 16, 32)
    assert torch.equal(ours(ids, vision_features=features).logits, ours(ids, pixels).logits)
    with pytest.raises(ValueError, match="16 <image> placeholders"):
        ours(ids[:, :-3], pixel_values=pixels)
    with pytest.raises(ValueError, match="no image was given"):
        ours(ids)
    with pytest.raises(ValueError, match="got both"):
        ours(ids, pixel_values=pixels, vision_features=features)
    with pytest.raises(TypeError, match="LlavaForConditionalGeneration"):
        LLaVA.from_transformers(torch.nn.Linear(2, 2))


def _tiny_parts(seed: int = 0) -> tuple[CLIPVisionTower, LlamaLM]:
    torch.manual_seed(seed)
    tower = CLIPVisionTower(ViTConfig(image_size=16, patch_size=4, hidden_size=32,
                                      num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64, hidden_act="quick_gelu"))
    lm = LlamaLM(LlamaConfig(vocab_size=50, hidden_size=48, intermediate_size=64,
                             num_attention_heads=4, num_key_value_heads=2))
    return tower.eval(), lm.eval()


def test_connectors_make_the_documented_number_of_tokens():
    features = torch.randn(3, 17, 32)
    assert MLPProjector(32, 48)(features).shape == (3, 17, 48)
    assert QFormerConnector(32, 48, num_queries=5, dim=16, num_heads=2)(features).shape == (3, 5, 48)
    tower, lm = _tiny_parts()
    vlm = LLaVA(tower, QFormerConnector(32, 48, num_queries=4, dim=16, num_heads=2), lm, 49)
    ids = torch.tensor([[3] + [49] * 4 + [5, 6]])
    assert vlm(ids, torch.randn(1, 3, 16, 16)).logits.shape == (1, 7, 50)
    with pytest.raises(ValueError, match="vocabulary"):
        LLaVA(tower, MLPProjector(32, 48), lm, 50)


def test_flamingo_is_its_language_model_until_the_gates_open():
    tower, lm = _tiny_parts()
    vlm = FlamingoVLM(tower, lm, image_token_id=49, num_latents=3).eval()
    ids = torch.tensor([[49, 3, 4, 5, 49, 6, 7]])
    pixels = torch.randn(2, 3, 16, 16)
    assert torch.equal(vlm(ids, pixels).logits, lm(ids).logits)
    for block in vlm.xattn:
        torch.nn.init.constant_(block.attn_gate, 0.5)
        torch.nn.init.constant_(block.ff_gate, 0.5)
    assert not torch.allclose(vlm(ids, pixels).logits, lm(ids).logits)


def test_flamingo_tokens_read_only_the_image_just_before_them():
    tower, lm = _tiny_parts(1)
    vlm = FlamingoVLM(tower, lm, image_token_id=49, num_latents=3).eval()
    for block in vlm.xattn:
        torch.nn.init.constant_(block.attn_gate, 1.0)
    ids = torch.tensor([[3, 49, 4, 5, 49, 6, 7]])
    assert vlm.image_index(ids).tolist() == [[-1, 0, 0, 0, 1, 1, 1]]
    first, second = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16)
    a = vlm(ids, torch.cat((first, second))).logits
    b = vlm(ids, torch.cat((first, torch.randn(1, 3, 16, 16)))).logits  # another second image
    c = vlm(ids, torch.cat((torch.randn(1, 3, 16, 16), second))).logits  # another first image
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6) and not torch.allclose(a[:, 4:], b[:, 4:])
    # before any image a token reads nothing; the first image reaches the later tokens only
    # through self-attention over the tokens that read it
    assert torch.allclose(a[:, 0], c[:, 0], atol=1e-6) and not torch.allclose(a[:, 1:4], c[:, 1:4])
    with pytest.raises(ValueError, match="marks 2 images"):
        vlm(ids, first)


def test_flamingo_generation_with_the_cache_equals_step_by_step_full_passes():
    tower, lm = _tiny_parts(4)
    vlm = FlamingoVLM(tower, lm, image_token_id=49, num_latents=3).eval()
    for block in vlm.xattn:
        torch.nn.init.constant_(block.attn_gate, 1.0)
        torch.nn.init.constant_(block.ff_gate, 1.0)
    ids, pixels = torch.tensor([[49, 3, 4, 5]]), torch.randn(1, 3, 16, 16)
    generated = vlm.generate(ids, 5, pixel_values=pixels)
    assert 49 not in generated[0, 4:].tolist()  # no new image marker: the comparison is fair
    tokens = ids
    for _ in range(5):
        nxt = vlm(tokens, pixels).logits[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat((tokens, nxt), dim=1)
    assert torch.equal(generated, tokens)


def test_generation_stops_at_end_of_sequence():
    tower, lm = _tiny_parts(3)
    vlm = LLaVA(tower, MLPProjector(32, 48), lm, 49).eval()
    ids = torch.tensor([[3] + [49] * 16 + [4]])
    pixels = torch.randn(1, 3, 16, 16)
    free = vlm.generate(ids, 4, pixel_values=pixels)
    first = int(free[0, ids.shape[1]])
    stopped = vlm.generate(ids, 4, pixel_values=pixels, eos_token_id=first)
    assert stopped.shape == (1, ids.shape[1] + 1) and int(stopped[0, -1]) == first


def test_tokenizer_has_the_special_tokens_and_the_chat_template_masks_the_assistant():
    scenes = ShapesWorld(seed=0).scenes(20)
    texts = [c for s in scenes for c in s.captions] + [q.question + " " + q.answer
                                                       for s in scenes for q in s.qa]
    tok = WordTokenizer.from_texts(texts + list(DESCRIBE_PROMPTS))
    assert tok.vocab[-5:] == ["<image>", "<user>", "<assistant>", "<bos>", "<eos>"]
    text = chat_text([("what colour is the circle?", "red"), ("is there a star?", "no")], 2)
    assert text == ("<user> <image> <image> what colour is the circle? <assistant> red <eos> "
                    "<user> is there a star? <assistant> no")
    ids = tok([text, chat_text([("describe the image.", "")], 0)])["input_ids"]
    marked = [tok.decode(row[m]) for row, m in zip(ids, assistant_mask(ids, tok))]
    assert marked == ["red no", ""]
    assert int(assistant_mask(ids, tok)[0].sum()) == 4  # red, <eos>, no, <eos>
    with pytest.raises(ValueError, match="only the last turn"):
        chat_text([("q", ""), ("q", "a")], 1)


def test_conversations_come_from_the_scene_annotations():
    scene = ShapesWorld(seed=0).scene(3)
    rng = np.random.default_rng(0)
    convs = [conversation(scene, rng) for _ in range(50)]
    questions = {(q.question, q.answer) for q in scene.qa}
    for turns in convs:
        if turns[0][0] in DESCRIBE_PROMPTS:
            assert len(turns) == 1 and turns[0][1] in scene.captions
        else:
            assert 1 <= len(turns) <= 3 and set(turns) <= questions
    assert any(t[0][0] in DESCRIBE_PROMPTS for t in convs)
    assert any(t[0][0] not in DESCRIBE_PROMPTS for t in convs)


def test_patch_merger_concatenates_each_two_by_two_block():
    merger = PatchMerger(3, 5, merge=2)
    torch.nn.init.ones_(merger.norm.weight)
    grid = torch.randn(1, 16, 3)  # a 4 x 4 grid
    seen = {}
    merger.mlp.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    assert merger(grid).shape == (1, 4, 5)
    normed = merger.norm(grid).view(4, 4, 3)
    top_right = torch.cat([normed[0, 2], normed[0, 3], normed[1, 2], normed[1, 3]])
    assert torch.allclose(seen["x"][0, 1], top_right)
    with pytest.raises(ValueError, match="square grid"):
        merger(torch.randn(1, 12, 3))


def test_patch_merger_positions_tell_tokens_apart():
    merger = PatchMerger(3, 5, merge=2, positions=4)
    torch.nn.init.normal_(merger.position)
    same = torch.ones(1, 16, 3)  # every patch alike: only the positions differ
    out = merger(same)
    assert not torch.allclose(out[0, 0], out[0, 1])
    plain = PatchMerger(3, 5, merge=2)(same)  # without positions the four tokens are alike
    assert torch.allclose(plain[0, 0], plain[0, 3])
    with pytest.raises(ValueError, match="4 position embeddings"):
        merger(torch.randn(1, 64, 3))


@pytest.mark.parametrize("kind, tokens", [("linear", 16), ("mlp", 16), ("qformer", 16),
                                          ("flamingo", 1)])
def test_connector_zoo_trains_only_the_connector_and_reloads(kind, tokens):
    tower, lm = _tiny_parts(5)
    for p in list(tower.parameters()) + list(lm.parameters()):
        p.requires_grad = False
    model, n = connector_model(kind, tower, lm, 49)
    assert n == tokens
    state = trainable_state(model)
    assert state and not any(k.startswith(("vision_tower.", "language_model.")) for k in state)
    ids = torch.tensor([[3] + [49] * n + [5, 6]])
    pixels = torch.randn(1, 3, 16, 16)
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.5)  # open Flamingo's gates too
    before = model(ids, pixels).logits
    again, _ = connector_model(kind, tower, lm, 49)
    load_trainable(again, {f"x.{k}": v for k, v in trainable_state(model).items()}, "x.")
    assert torch.allclose(again(ids, pixels).logits, before)
    with pytest.raises(ValueError, match="do not match"):
        load_trainable(again, {"x.nothing": torch.zeros(1)}, "x.")
    with pytest.raises(ValueError, match="unknown connector"):
        connector_model("mystery", tower, lm, 49)
