"""The fusion building blocks and models of §39.4 (mmcourse.models.fusion).

Cross-attention is checked against torch.nn.MultiheadAttention, Flamingo's gated block against
transformers' IdeficsGatedCrossAttentionLayer (tiny random configs, no download).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.models import (
    CrossAttention,
    CrossAttentionBlock,
    CrossAttentionFusion,
    EarlyFusion,
    FiLM,
    FiLMFusion,
    FlamingoFusion,
    FusionConfig,
    GatedCrossAttentionBlock,
    GatedMultimodalUnit,
    GMUFusion,
    LateFusion,
)

TOL = 1e-5
MODELS = [EarlyFusion, LateFusion, CrossAttentionFusion, GMUFusion, FiLMFusion, FlamingoFusion]
CONFIG = FusionConfig(image_dim=11, vocab_size=20, max_text_len=6, dim=16, num_heads=4, mlp_dim=24,
                      num_answers=3)


def inputs(batch: int = 3, m: int = 4, length: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, m, CONFIG.image_dim, generator=g)
    return images, torch.randint(0, 20, (batch, length), generator=g)


def randomize(module: nn.Module, scale: float = 0.3, seed: int = 0) -> nn.Module:
    """Redraw every parameter (gates and norms included): nothing stays at its initial value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            offset = 1.0 if p.dim() == 1 and p.numel() > 1 else 0.0
            p.copy_(scale * torch.randn(p.shape, generator=g) + offset)
    return module


# ---------------------------------------------------------------- cross-attention
@pytest.mark.parametrize("context_dim", [None, 10])
def test_cross_attention_matches_torch_multihead_attention(context_dim):
    torch.manual_seed(0)
    ours = CrossAttention(16, 4, context_dim=context_dim)
    kv_dim = context_dim or 16
    ref = nn.MultiheadAttention(16, 4, batch_first=True, kdim=kv_dim, vdim=kv_dim)
    with torch.no_grad():
        if context_dim is None:
            ref.in_proj_weight.copy_(
                torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        else:
            ref.q_proj_weight.copy_(ours.q_proj.weight)
            ref.k_proj_weight.copy_(ours.k_proj.weight)
            ref.v_proj_weight.copy_(ours.v_proj.weight)
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    x, context = torch.randn(2, 5, 16), torch.randn(2, 7, context_dim or 16)
    keep = torch.rand(2, 7) > 0.3
    keep[:, 0] = True
    with torch.no_grad():
        expected, expected_weights = ref(x, context, context, key_padding_mask=~keep,
                                         average_attn_weights=False)
        fused, _ = ours(x, context, keep[:, None, None, :])
        explicit, weights = ours(x, context, keep[:, None, None, :], return_attention=True)
    assert (fused - expected).abs().max() < TOL
    assert (explicit - expected).abs().max() < TOL
    assert weights.shape == (2, 4, 5, 7) and (weights - expected_weights).abs().max() < TOL
    assert weights[~keep[:, None, None, :].expand_as(weights)].abs().max() == 0


def test_cross_attention_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="same B"):
        CrossAttention(8, 2)(torch.randn(2, 3, 8), torch.randn(3, 4, 8))


def test_cross_attention_block_without_media_is_its_mlp_branch():
    block = randomize(CrossAttentionBlock(16, 4, 32)).eval()
    x, media = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
    mask = torch.tensor([[True, False, True], [False, False, False]])  # sample 1 has no media
    with torch.no_grad():
        out, _ = block(x, media, media_mask=mask)
        alone, _ = block(x[:1], media[:1, [0, 2]])
    assert (out[0] - alone[0]).abs().max() < TOL  # masked tokens are as if absent
    assert (out[1] - (x[1] + block.mlp(block.norm2(x[1])))).abs().max() < TOL


def test_cross_attention_block_rejects_unknown_options():
    with pytest.raises(ValueError, match="unknown norm"):
        CrossAttentionBlock(8, 2, 16, norm="batchnorm")
    with pytest.raises(ValueError, match="unknown mlp"):
        CrossAttentionBlock(8, 2, 16, mlp="tanh")


# ---------------------------------------------------------------- Flamingo's gated block
@pytest.mark.parametrize("vector_gates", [False, True])
def test_gated_block_is_the_identity_at_initialisation(vector_gates):
    block = GatedCrossAttentionBlock(16, 4, 32, vector_gates=vector_gates)
    assert block.attn_gate.shape == ((16,) if vector_gates else (1,)) and not block.attn_gate.any()
    assert not block.ff_gate.any()
    x = torch.randn(2, 5, 16)
    out, _ = block(x, torch.randn(2, 3, 16))
    assert torch.equal(out, x)
    out.sum().backward()  # the gates still get a gradient, so training can open them
    assert block.attn_gate.grad.abs().sum() > 0 and block.ff_gate.grad.abs().sum() > 0


def test_gated_block_with_open_gates_is_the_ungated_block():
    torch.manual_seed(0)
    gated = randomize(GatedCrossAttentionBlock(16, 4, 32))
    plain = CrossAttentionBlock(16, 4, 32)
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if "gate" not in k})
    with torch.no_grad():
        gated.attn_gate.fill_(50.0)  # tanh(50) == 1 in float32
        gated.ff_gate.fill_(50.0)
        x, media = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
        assert (gated(x, media)[0] - plain(x, media)[0]).abs().max() < TOL


def idefics_layer(alpha_type: str, hidden: int = 32, media_dim: int = 24, heads: int = 4,
                  inter: int = 48, seed: int = 0, **kwargs):
    from transformers import IdeficsConfig
    from transformers.models.idefics.modeling_idefics import IdeficsGatedCrossAttentionLayer

    config = IdeficsConfig(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
                           vision_config=dict(embed_dim=media_dim), alpha_type=alpha_type,
                           alpha_initializer="zeros", **kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    layer = IdeficsGatedCrossAttentionLayer(config, layer_idx=0).eval()
    with torch.no_grad():  # open the gates and move the norms off 1 so that every tensor matters
        for name, p in layer.named_parameters():
            p.add_((0.5 if "alpha" in name else 0.1) * torch.randn_like(p))
    return layer


@pytest.mark.parametrize("alpha_type", ["float", "vector"])
@pytest.mark.parametrize("media_dim", [32, 24])
def test_gated_block_matches_idefics(alpha_type, media_dim):
    layer = idefics_layer(alpha_type, media_dim=media_dim)
    ours = GatedCrossAttentionBlock.from_transformers(layer)
    assert ours.attn_gate.numel() == (32 if alpha_type == "vector" else 1)
    x, media = torch.randn(2, 5, 32), torch.randn(2, 3, media_dim)
    mask = torch.tensor([[True, True, False], [False, False, False]])  # sample 1 sees no image
    no_key = torch.finfo(torch.float32).min
    bias = torch.zeros(2, 1, 5, 3).masked_fill(~mask[:, None, None, :], no_key)
    with torch.no_grad():
        cases = ((None, torch.zeros(2, 1, 5, 3), torch.ones(2, 5)),
                 (mask, bias, mask.any(1)[:, None].expand(2, 5).float()))
        for media_mask, image_mask, gate in cases:
            expected = layer(x, image_hidden_states=media, image_attention_mask=image_mask,
                             cross_attention_gate=gate)
            expected = expected[0] if isinstance(expected, tuple) else expected
            got, _ = ours(x, media, media_mask=media_mask)
            assert (got - expected).abs().max() < TOL


def test_from_transformers_rejects_what_it_cannot_load():
    with pytest.raises(TypeError, match="IdeficsGatedCrossAttentionLayer"):
        GatedCrossAttentionBlock.from_transformers(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="qk_layer_norms"):
        GatedCrossAttentionBlock.from_transformers(idefics_layer("float", qk_layer_norms=True))
    with pytest.raises(ValueError, match="SiLU"):
        GatedCrossAttentionBlock.from_transformers(idefics_layer("float", hidden_act="gelu"))


# ---------------------------------------------------------------- GMU and FiLM
def test_gmu_follows_its_equations_and_broadcasts():
    gmu = randomize(GatedMultimodalUnit(5, 3, 4))
    a, b = torch.randn(2, 6, 5), torch.randn(2, 1, 3)
    h, z = gmu(a, b, return_gate=True)
    b_full = b.expand(2, 6, 3)
    z_ref = torch.sigmoid(torch.cat([a, b_full], -1) @ gmu.gate.weight.T)
    h_ref = (z_ref * torch.tanh(a @ gmu.proj_a.weight.T)
             + (1 - z_ref) * torch.tanh(b_full @ gmu.proj_b.weight.T))
    assert h.shape == z.shape == (2, 6, 4)
    assert (z - z_ref).abs().max() < TOL and (h - h_ref).abs().max() < TOL
    assert ((z > 0) & (z < 1)).all()
    with pytest.raises(ValueError, match="expected a"):
        gmu(torch.randn(2, 4), torch.randn(2, 3))


def test_film_scales_and_shifts_every_position_alike():
    film = FiLM(3, 4)
    assert torch.equal(film.proj.bias[:4], torch.ones(4))  # gamma starts at 1
    randomize(film)
    features, condition = torch.randn(2, 5, 6, 4), torch.randn(2, 3)
    gamma, beta = (condition @ film.proj.weight.T + film.proj.bias).chunk(2, -1)
    expected = gamma[:, None, None] * features + beta[:, None, None]
    assert (film(features, condition) - expected).abs().max() < TOL
    with pytest.raises(ValueError, match="expected features"):
        film(torch.randn(2, 5, 3), condition)


# ---------------------------------------------------------------- the fusion models
@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_models_give_logits_and_check_their_inputs(cls):
    torch.manual_seed(0)
    model = cls(CONFIG)
    images, texts = inputs()
    logits = model(images, texts)
    assert logits.shape == (3, CONFIG.num_answers)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters()), "every parameter is used"
    with pytest.raises(ValueError, match="image_tokens"):
        model(images[..., :5], texts)
    with pytest.raises(ValueError, match="image_tokens"):
        model(images[:2], texts)


def test_late_fusion_is_additive_so_it_cannot_bind():
    torch.manual_seed(0)
    model = randomize(LateFusion(CONFIG), scale=0.5).eval()
    images, texts = inputs(batch=2)
    with torch.no_grad():
        matched = model(images, texts)
        swapped = model(images, texts.flip(0))
    # f(i1) + g(t1) + f(i2) + g(t2) == f(i1) + g(t2) + f(i2) + g(t1): no interaction term
    assert (matched.sum(0) - swapped.sum(0)).abs().max() < TOL
    image_logits, text_logits = model.unimodal_logits(images, texts)
    assert (image_logits + text_logits - matched).abs().max() < TOL


@pytest.mark.parametrize("cls", [EarlyFusion, CrossAttentionFusion, GMUFusion, FiLMFusion])
def test_intermediate_and_early_models_are_not_additive(cls):
    torch.manual_seed(0)
    model = randomize(cls(CONFIG), scale=0.5).eval()
    images, texts = inputs(batch=2)
    with torch.no_grad():
        gap = (model(images, texts).sum(0) - model(images, texts.flip(0)).sum(0)).abs().max()
    assert gap > 1e-3


def test_flamingo_fusion_starts_text_only_and_cross_attention_returns_weights():
    torch.manual_seed(0)
    model = FlamingoFusion(CONFIG).eval()
    images, texts = inputs()
    with torch.no_grad():
        assert torch.equal(model(images, texts), model(torch.zeros_like(images), texts))
        logits, weights = CrossAttentionFusion(CONFIG).eval()(images, texts, return_attention=True)
    assert logits.shape == (3, CONFIG.num_answers) and weights.shape == (3, CONFIG.num_heads, 6, 4)
    assert torch.allclose(weights.sum(-1), torch.ones(3, CONFIG.num_heads, 6))


def test_config_and_text_encoder_errors():
    with pytest.raises(ValueError, match="divisible"):
        FusionConfig(image_dim=4, vocab_size=5, dim=10, num_heads=4)
    with pytest.raises(ValueError, match="token ids"):
        CrossAttentionFusion(CONFIG)(inputs()[0], torch.zeros(3, 9, dtype=torch.long))


def test_exercises_accept_the_reference_solutions():
    from mmcourse.exercises import check

    def film(features, condition, weight, bias):
        gamma, beta = (condition @ weight.T + bias).chunk(2, -1)
        view = (features.shape[0],) + (1,) * (features.dim() - 2) + (-1,)
        return gamma.view(view) * features + beta.view(view)

    def gmu(a, b, w_a, w_b, w_z):
        shape = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
        a, b = a.expand(*shape, a.shape[-1]), b.expand(*shape, b.shape[-1])
        z = torch.sigmoid(torch.cat([a, b], -1) @ w_z.T)
        return z * torch.tanh(a @ w_a.T) + (1 - z) * torch.tanh(b @ w_b.T)

    def gated_block(x, media, block):
        x = x + torch.tanh(block.attn_gate) * block.attn(block.norm1(x), media)[0]
        return x + torch.tanh(block.ff_gate) * block.mlp(block.norm2(x))

    assert check("39.4.film", film, verbose=False)
    assert check("39.4.gmu", gmu, verbose=False)
    assert check("39.4.gated_block", gated_block, verbose=False)
    assert not check("39.4.gated_block", lambda x, media, block: x, verbose=False)
    assert not check("39.4.film", lambda f, c, w, b: F.relu(f), verbose=False)
