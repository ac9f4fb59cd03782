"""mmcourse.models.CLIP against transformers.CLIPModel, its towers, tokenizer and checkpoints.

Offline: tiny random transformers models, no download.
"""
from __future__ import annotations

import random
import re

import pytest
import torch
import transformers

from mmcourse.models import (CLIP, CaptionTokenizer, CLIPConfig, CLIPTextConfig, CLIPVisionTower,
                             ViTConfig)

TOL = 1e-5

CONFIGS = {
    "quick_gelu-base": dict(
        text=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4),
        vision=dict(image_size=32, patch_size=8, hidden_size=48, intermediate_size=37,
                    num_hidden_layers=3, num_attention_heads=4),
        projection_dim=16, act="quick_gelu", eos=98, batch=(3, 4)),
    "gelu-deep-text-one-head": dict(
        text=dict(hidden_size=24, intermediate_size=50, num_hidden_layers=4, num_attention_heads=1),
        vision=dict(image_size=24, patch_size=6, hidden_size=16, intermediate_size=16,
                    num_hidden_layers=1, num_attention_heads=2, num_channels=3),
        projection_dim=8, act="gelu", eos=98, batch=(1, 5)),
    "legacy-eos-2-wide-projection": dict(
        text=dict(hidden_size=40, intermediate_size=64, num_hidden_layers=1, num_attention_heads=5,
                  layer_norm_eps=1e-6),
        vision=dict(image_size=16, patch_size=2, hidden_size=30, intermediate_size=60,
                    num_hidden_layers=2, num_attention_heads=3, layer_norm_eps=1e-6),
        projection_dim=64, act="quick_gelu", eos=2, batch=(2, 3)),
    "one-patch-gelu": dict(
        text=dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2),
        vision=dict(image_size=8, patch_size=8, hidden_size=16, intermediate_size=32,
                    num_hidden_layers=2, num_attention_heads=4),
        projection_dim=4, act="gelu", eos=98, batch=(4, 2)),
}


def hf_clip(text: dict, vision: dict, projection_dim: int, act: str, eos: int,
            seed: int = 0) -> transformers.CLIPModel:
    """A tiny random CLIPModel with every weight redrawn (LayerNorm weights near 1), so that a
    swapped or missing tensor shows."""
    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=99, max_position_embeddings=16, bos_token_id=97,
                         eos_token_id=eos, hidden_act=act, **text),
        vision_config=dict(hidden_act=act, **vision), projection_dim=projection_dim,
        logit_scale_init_value=2.0 + seed / 10)
    model = transformers.CLIPModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name != "logit_scale":
                is_norm_weight = re.search(r"(layer_?norm|layrnorm)\w*\.weight", name)
                param.copy_(0.1 * torch.randn_like(param) + (1.0 if is_norm_weight else 0.0))
    return model


def padded_texts(batch: int, length: int = 11, seed: int = 0, eos: int = 98):
    """Texts of uneven lengths: <bos>=97, random words, <eos>=98, then padding 0 (mask 0)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 97, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    for row in range(batch):
        n = length - 2 * row if row < length // 2 else 3
        ids[row, 0], ids[row, n - 1] = 97, eos
        ids[row, n:], mask[row, n:] = 0, 0
    return ids, mask


@pytest.mark.parametrize("name", list(CONFIGS))
def test_clip_matches_transformers(name):
    spec = dict(CONFIGS[name])
    n_images, n_texts = spec.pop("batch")
    reference = hf_clip(**spec)
    ours = CLIP.from_transformers(reference)
    size, channels = spec["vision"]["image_size"], spec["vision"].get("num_channels", 3)
    pixels = torch.randn(n_images, channels, size, size, generator=torch.Generator().manual_seed(1))
    ids, mask = padded_texts(n_texts, eos=98)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, pixel_values=pixels,
                             output_hidden_states=True)
        got = ours(pixel_values=pixels, input_ids=ids, attention_mask=mask)
        features = {layer: ours.vision_features(pixels, layer) for layer in (-1, -2, 0)}
    assert got.logits_per_image.shape == (n_images, n_texts)
    for key in ("logits_per_image", "logits_per_text", "image_embeds", "text_embeds"):
        assert torch.allclose(getattr(got, key), getattr(expected, key), atol=TOL), key
    hidden = expected.vision_model_output.hidden_states
    for layer, value in features.items():
        assert torch.allclose(value, hidden[layer], atol=TOL), layer
    assert torch.allclose(features[-1], expected.vision_model_output.last_hidden_state, atol=TOL)
    assert ours.logit_scale.item() == pytest.approx(reference.logit_scale.exp().item())


#: how the texts of a random sweep end: <eos> the highest id (OpenAI's layout), <eos> an id in the
#: middle of the vocabulary (pooled at its first occurrence), the legacy eos_token_id == 2 (pooled at
#: the highest id), or padding written with the <eos> id itself (as CLIPTokenizer pads)
EOS_STYLES = ("highest", "middle", "legacy-2", "pad-with-eos")


def random_spec(seed: int) -> dict:
    """A random tiny CLIP configuration and batch, different from the named ones above: widths,
    depths, heads, patch and image sizes, channels, text length, activation and eos layout."""
    g = random.Random(seed)
    heads_t, heads_v = g.choice([1, 2, 4]), g.choice([1, 2, 3])
    patch = g.choice([2, 3, 4, 5, 7])
    vocab = g.choice([60, 99, 130])
    style = EOS_STYLES[seed % len(EOS_STYLES)]
    eos = {"highest": vocab - 1, "middle": vocab // 2, "legacy-2": 2, "pad-with-eos": vocab - 1}
    return dict(
        text=dict(hidden_size=heads_t * g.choice([4, 6, 8]), num_attention_heads=heads_t,
                  intermediate_size=g.choice([8, 20, 33]), num_hidden_layers=g.choice([1, 2, 3]),
                  max_position_embeddings=g.choice([7, 12, 20]), vocab_size=vocab,
                  layer_norm_eps=g.choice([1e-5, 1e-6])),
        vision=dict(image_size=patch * g.choice([1, 2, 3, 4]), patch_size=patch,
                    num_channels=g.choice([1, 3]), hidden_size=heads_v * g.choice([4, 6, 10]),
                    num_attention_heads=heads_v, intermediate_size=g.choice([8, 24, 40]),
                    num_hidden_layers=g.choice([1, 2, 3])),
        projection_dim=g.choice([3, 8, 24]), act=g.choice(["quick_gelu", "gelu", "gelu_new"]),
        eos=eos[style], style=style, batch=(g.choice([1, 2, 5]), g.choice([2, 3, 6])))


def random_texts(spec: dict, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded texts of uneven lengths (one of them full length) in ``spec``'s layout."""
    g = torch.Generator().manual_seed(seed)
    n_texts, length = spec["batch"][1], spec["text"]["max_position_embeddings"]
    vocab, eos, style = spec["text"]["vocab_size"], spec["eos"], spec["style"]
    high = eos if style in ("highest", "pad-with-eos") else vocab
    ids = torch.randint(3, high, (n_texts, length), generator=g)
    ids[ids == eos] = 3  # one <eos> per text (a second one would be pooled only if it came first)
    mask = torch.ones_like(ids)
    for row in range(n_texts):
        n = length if row == 0 else int(torch.randint(2, length + 1, (1,), generator=g))
        ids[row, n - 1] = eos
        ids[row, n:] = eos if style == "pad-with-eos" else 0
        mask[row, n:] = 0
    return ids, mask


@pytest.mark.parametrize("seed", range(8))
def test_clip_matches_transformers_on_a_random_sweep(seed):
    spec = random_spec(seed)
    text = dict(spec["text"])
    hf = transformers.CLIPConfig(
        text_config=dict(bos_token_id=1, eos_token_id=spec["eos"], hidden_act=spec["act"], **text),
        vision_config=dict(hidden_act=spec["act"], **spec["vision"]),
        projection_dim=spec["projection_dim"], logit_scale_init_value=1.0 + seed / 7)
    torch.manual_seed(seed)
    reference = transformers.CLIPModel(hf).eval()
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if name != "logit_scale":
                is_norm_weight = re.search(r"(layer_?norm|layrnorm)\w*\.weight", name)
                param.copy_(0.2 * torch.randn_like(param) + (1.0 if is_norm_weight else 0.0))
    ours = CLIP.from_transformers(reference)
    size, channels = spec["vision"]["image_size"], spec["vision"]["num_channels"]
    pixels = torch.randn(spec["batch"][0], channels, size, size,
                         generator=torch.Generator().manual_seed(seed))
    ids, mask = random_texts(spec, seed)
    with torch.no_grad():
        expected = reference(pixel_values=pixels, input_ids=ids, attention_mask=mask)
        got = ours(pixel_values=pixels, input_ids=ids, attention_mask=mask)
    assert got.logits_per_image.shape == spec["batch"]
    assert torch.allclose(got.logits_per_image, expected.logits_per_image, atol=TOL, rtol=0)
    assert torch.allclose(got.text_embeds, expected.text_embeds, atol=TOL, rtol=0)
    # the texts really pool at different positions, so a wrong <eos> rule would show
    assert len(set(ours.text.eos_positions(ids).tolist())) > 1 or len(ids) == 1


def test_legacy_eos_pools_at_the_highest_id_and_new_eos_at_its_first_occurrence():
    text = CLIPTextConfig(vocab_size=20, max_position_embeddings=8, hidden_size=8,
                          num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    ids = torch.tensor([[5, 2, 19, 2, 0], [2, 7, 3, 0, 0]])
    from mmcourse.models import CLIPTextTransformer

    legacy = CLIPTextTransformer(CLIPTextConfig(**(vars(text) | {"eos_token_id": 2})))
    assert legacy.eos_positions(ids).tolist() == [2, 1]
    modern = CLIPTextTransformer(CLIPTextConfig(**(vars(text) | {"eos_token_id": 7})))
    assert modern.eos_positions(ids).tolist() == [0, 1]  # row 0 has no 7: position 0, as HF


def test_legacy_eos_matches_transformers_when_the_highest_id_is_not_eos():
    reference = hf_clip(**{k: v for k, v in CONFIGS["legacy-eos-2-wide-projection"].items()
                           if k != "batch"})
    ours = CLIP.from_transformers(reference)
    ids = torch.tensor([[97, 50, 96, 2, 10, 0], [97, 5, 2, 0, 0, 0]])
    with torch.no_grad():
        expected = reference.get_text_features(input_ids=ids).pooler_output
        got = ours.text_projection(ours.text(ids).pooler_output)
    assert torch.allclose(got, expected, atol=TOL)


def test_text_is_causal_and_ignores_padding():
    torch.manual_seed(0)
    model = CLIP(CLIPConfig.tiny(vocab_size=30, eos_token_id=29, max_length=12)).eval()
    short = torch.tensor([[28, 4, 5, 29]])
    padded = torch.tensor([[28, 4, 5, 29, 0, 0, 0]])
    with torch.no_grad():
        a = model.encode_text(short)
        b = model.encode_text(padded, (padded != 0).long())
        # causal: tokens after <eos> cannot change the pooled output, masked or not
        c = model.encode_text(torch.tensor([[28, 4, 5, 29, 7, 8, 9]]))
        d = model.encode_text(torch.tensor([[28, 4, 6, 29]]))
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)
    assert not torch.allclose(a, d, atol=1e-4)


def test_shapes_norms_and_features():
    torch.manual_seed(0)
    config = CLIPConfig.tiny(vocab_size=30, eos_token_id=29, image_size=32)
    model = CLIP(config).eval()
    pixels, ids = torch.rand(2, 3, 32, 32), torch.tensor([[28, 3, 29], [28, 4, 29]])
    with torch.no_grad():
        out = model(pixels, ids)
        features = model.vision_features(pixels)
    assert out.logits_per_image.shape == (2, 2) and out.image_embeds.shape == (2, 64)
    assert torch.allclose(out.image_embeds.norm(dim=1), torch.ones(2))
    assert torch.allclose(out.text_embeds.norm(dim=1), torch.ones(2))
    assert features.shape == (2, 1 + 16, 64)
    assert model.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
    assert model.vision.patch_embed.proj.bias is None and model.visual_projection.bias is None
    with pytest.raises(ValueError, match=r"expected pixel_values of shape \(B, 3, 32, 32\)"):
        model.encode_image(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="L <= 32"):
        model.encode_text(torch.zeros(1, 40, dtype=torch.long))


def test_vision_tower_from_a_clip_vision_model_and_errors():
    reference = hf_clip(**{k: v for k, v in CONFIGS["quick_gelu-base"].items() if k != "batch"})
    tower = CLIPVisionTower.from_transformers(reference.vision_model)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(tower(pixels).pooler_output,
                              reference.vision_model(pixel_values=pixels).pooler_output, atol=TOL)
    with pytest.raises(TypeError, match="CLIPVisionModel"):
        CLIPVisionTower.from_transformers(reference)
    with pytest.raises(TypeError, match="CLIPModel"):
        CLIP.from_transformers(reference.vision_model)
    with pytest.raises(ValueError, match="divisible"):
        CLIPTextConfig(hidden_size=10, num_attention_heads=3)


def test_checkpoint_round_trip_keeps_weights_config_and_vocabulary(tmp_path):
    tokenizer = CaptionTokenizer.from_texts(["a red circle", "two objects: a blue star, a cross"])
    torch.manual_seed(0)
    config = CLIPConfig.tiny(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                             image_size=32)
    model = CLIP(config).eval()
    path = tmp_path / "clip.safetensors"
    model.save_checkpoint(path, tokenizer, notes="test")
    loaded, loaded_tok = CLIP.from_checkpoint(path), CaptionTokenizer.from_checkpoint(path)
    assert loaded.config == config and loaded_tok.vocab == tokenizer.vocab
    batch = tokenizer(["a red circle", "a blue star"])
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(pixels, **batch).logits_per_image,
                           loaded(pixels, **batch).logits_per_image)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(ValueError, match="no CLIP configuration"):
        CLIP.from_checkpoint(tmp_path / "bare.safetensors")


def test_caption_tokenizer_layout_padding_and_unknown_words():
    tokenizer = CaptionTokenizer.from_texts(["a red circle", "there are two shapes: a cross, a star"])
    assert tokenizer.vocab[:2] == ["<pad>", "<unk>"] and tokenizer.vocab[-2:] == ["<bos>", "<eos>"]
    assert tokenizer.eos_token_id == len(tokenizer) - 1
    batch = tokenizer(["a red circle", "A star, a magenta cross"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == (2, 8) and mask[0].tolist() == [1] * 5 + [0] * 3
    assert ids[0, 0] == tokenizer.bos_token_id and ids[0, 4] == tokenizer.eos_token_id
    assert ids[1].tolist().count(tokenizer.unk_token_id) == 1  # "magenta"
    assert tokenizer.decode(ids[0]) == "a red circle"
    assert ids.argmax(dim=1).tolist() == [4, 7]  # <eos> is the highest id of every text
    with pytest.raises(ValueError, match="max_length"):
        tokenizer(["a red circle"], max_length=3)
    with pytest.raises(ValueError, match="list of texts"):
        tokenizer("a red circle")
    with pytest.raises(ValueError, match="expected a vocabulary"):
        CaptionTokenizer(["a", "b"])


def test_a_few_steps_of_training_lower_the_loss():
    from mmcourse.losses import contrastive_loss

    torch.manual_seed(0)
    model = CLIP(CLIPConfig(
        vision=ViTConfig(image_size=16, patch_size=4, hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32, layer_norm_eps=1e-5),
        text=CLIPTextConfig(vocab_size=20, max_position_embeddings=8, hidden_size=16,
                            num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            eos_token_id=19),
        projection_dim=8))
    pixels = 3 * torch.randn(8, 3, 16, 16)  # noise images differ little after pooling at scale 1
    ids = torch.cat([torch.full((8, 1), 18), torch.randint(1, 18, (8, 4)),
                     torch.full((8, 1), 19)], dim=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        out = model(pixels, ids)
        loss = contrastive_loss(out.image_embeds, out.text_embeds, model.logit_scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert model.log_logit_scale.grad is not None
