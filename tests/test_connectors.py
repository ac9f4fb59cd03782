"""Tests for mmcourse.models.connectors: the Q-Former and the Perceiver Resampler reproduce
transformers' Blip2QFormerModel and IdeficsPerceiverResampler (tiny random configs, no download).
"""
from __future__ import annotations

import pytest
import torch

from mmcourse.models import PerceiverResampler, QFormer


def _reference_qformer(dim: int, heads: int, layers: int, mlp: int, enc: int, freq: int, attn: str):
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    config = Blip2QFormerConfig(hidden_size=dim, num_attention_heads=heads, num_hidden_layers=layers,
                                intermediate_size=mlp, encoder_hidden_size=enc,
                                cross_attention_frequency=freq)
    config._attn_implementation = attn
    model = Blip2QFormerModel(config).eval()
    with torch.no_grad():  # random LayerNorm parameters, so a wrong mapping of them shows
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layernorm" in name:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
    return model


@pytest.mark.parametrize(
    "dim, heads, layers, mlp, enc, freq, queries, batch, attn",
    [
        (32, 4, 2, 64, 24, 2, 5, 2, "eager"),
        (48, 3, 3, 80, 48, 1, 8, 3, "sdpa"),
        (16, 2, 4, 32, 40, 3, 1, 1, "eager"),
    ],
)
@pytest.mark.parametrize("masked", [False, True])
def test_qformer_matches_transformers(dim, heads, layers, mlp, enc, freq, queries, batch, attn,
                                      masked):
    torch.manual_seed(0)
    reference = _reference_qformer(dim, heads, layers, mlp, enc, freq, attn)
    ours = QFormer.from_transformers(reference)
    assert sum(layer.has_cross_attention for layer in ours.layers) == len(range(0, layers, freq))
    query_embeds = torch.randn(batch, queries, dim)
    image = torch.randn(batch, 7, enc)
    mask = None
    if masked:
        mask = torch.ones(batch, 7, dtype=torch.long)
        mask[:, 5:] = 0
        mask[0, 1] = 0
    with torch.no_grad():
        expected = reference(query_embeds=query_embeds, encoder_hidden_states=image,
                             encoder_attention_mask=mask).last_hidden_state
        got = ours(query_embeds=query_embeds, encoder_hidden_states=image,
                   encoder_attention_mask=mask).last_hidden_state
    assert got.shape == (batch, queries, dim)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    if masked:  # the mask is used: changing the masked image tokens changes nothing
        image2 = image.clone()
        image2[:, 5:] = 100.0
        with torch.no_grad():
            again = ours(query_embeds, image2, mask).last_hidden_state
        torch.testing.assert_close(again, got, atol=1e-5, rtol=1e-5)


def test_qformer_rejects_wrong_shapes():
    model = QFormer(dim=16, num_heads=2, num_layers=1, mlp_dim=32, encoder_dim=8)
    with pytest.raises(ValueError, match=r"query_embeds of shape \(B, Q, 16\)"):
        model(torch.randn(2, 3, 12), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="encoder_hidden_states of shape"):
        model(torch.randn(2, 3, 16), torch.randn(2, 5, 9))
    with pytest.raises(ValueError, match="encoder_hidden_states of shape"):
        model(torch.randn(2, 3, 16), torch.randn(3, 5, 8))
    with pytest.raises(ValueError, match="encoder_attention_mask of shape"):
        model(torch.randn(2, 3, 16), torch.randn(2, 5, 8), torch.ones(2, 4))
    with pytest.raises(ValueError, match="cross_attention_frequency >= 1"):
        QFormer(dim=16, num_heads=2, cross_attention_frequency=0)
    with pytest.raises(TypeError, match="Blip2QFormerModel"):
        QFormer.from_transformers(torch.nn.Linear(2, 2))


@pytest.mark.parametrize(
    "dim, depth, heads, head_dim, latents, qk_norm, batch, context_len",
    [
        (32, 2, 4, 8, 6, False, 2, 10),
        (24, 1, 3, 16, 3, True, 3, 1),  # num_heads * head_dim != dim
        (16, 3, 2, 4, 9, False, 1, 20),
    ],
)
def test_perceiver_resampler_matches_transformers(dim, depth, heads, head_dim, latents, qk_norm,
                                                  batch, context_len):
    from transformers import IdeficsConfig
    from transformers.models.idefics.perceiver import IdeficsPerceiverResampler

    torch.manual_seed(0)
    config = IdeficsConfig(vision_config={"embed_dim": dim},
                           perceiver_config={"qk_layer_norms_perceiver": qk_norm})
    reference = IdeficsPerceiverResampler(config, dim, depth, heads, head_dim, latents).eval()
    with torch.no_grad():  # random LayerNorm parameters, so a wrong mapping of them shows
        for name, p in reference.named_parameters():
            if "norm" in name or ".ln." in name:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
    ours = PerceiverResampler.from_transformers(reference)
    context = torch.randn(batch, context_len, dim)
    with torch.no_grad():
        expected = reference(context)
        got = ours(context)
    assert got.shape == (batch, latents, dim)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_perceiver_resampler_rejects_wrong_shapes():
    model = PerceiverResampler(dim=16, depth=1, num_heads=2, head_dim=8, num_latents=4)
    with pytest.raises(ValueError, match=r"context of shape \(B, N, 16\)"):
        model(torch.randn(2, 5, 12))
    with pytest.raises(ValueError, match=r"context of shape \(B, N, 16\)"):
        model(torch.randn(5, 16))
    with pytest.raises(TypeError, match="IdeficsPerceiverResampler"):
        PerceiverResampler.from_transformers(torch.nn.Linear(2, 2))
