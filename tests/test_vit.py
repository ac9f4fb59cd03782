"""The from-scratch ViT (mmcourse.models.vit) and its blocks (mmcourse.nn) against transformers.ViTModel.

Offline: tiny random transformers models, no download.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
import transformers
from torch import nn

from mmcourse.models import ViT, ViTConfig
from mmcourse.nn import MultiHeadAttention, PatchEmbedding, make_activation, patchify

TOL = 1e-5

CONFIGS = {
    "gelu-pool": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                      image_size=16, patch_size=4, num_channels=3, hidden_act="gelu", batch=2, pool=True),
    "gelu_new-nopool-gray": dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=6, intermediate_size=96,
                                 image_size=24, patch_size=6, num_channels=1, hidden_act="gelu_new",
                                 layer_norm_eps=1e-6, batch=3, pool=False),
    "quick_gelu-noqkvbias-4ch": dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=128, image_size=32, patch_size=8, num_channels=4,
                                     hidden_act="quick_gelu", qkv_bias=False, batch=1, pool=True),
    "tanh-deep-sizes-as-pairs": dict(hidden_size=24, num_hidden_layers=4, num_attention_heads=3,
                                     intermediate_size=50, image_size=[12, 12], patch_size=[2, 2], num_channels=3,
                                     hidden_act="gelu_pytorch_tanh", batch=2, pool=True),
    "relu-one-patch-one-head": dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=1,
                                    intermediate_size=16, image_size=8, patch_size=8, num_channels=2,
                                    hidden_act="relu", layer_norm_eps=1e-5, batch=4, pool=False),
}


def hf_vit(batch: int = 2, pool: bool = True, seed: int = 0, **kwargs) -> tuple[nn.Module, torch.Tensor]:
    """A tiny random transformers ViTModel with every weight redrawn at unit scale (so that LayerNorm
    weights and biases are not 1 and 0 and a swapped tensor shows), and a batch of pixel values for it."""
    torch.manual_seed(seed)
    config = transformers.ViTConfig(attn_implementation="eager", **kwargs)
    model = transformers.ViTModel(config, add_pooling_layer=pool).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(0.1 * torch.randn_like(param) + (1.0 if re.search(r"layernorm.*weight", name) else 0.0))
    size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    return model, torch.randn(batch, config.num_channels, size, size)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("output_attentions", [False, True])  # the fused kernel and the explicit softmax
def test_matches_transformers(name: str, output_attentions: bool) -> None:
    model, pixels = hf_vit(**CONFIGS[name])
    ours = ViT.from_transformers(model)
    assert not ours.training
    with torch.no_grad():
        expected = model(pixel_values=pixels)
        got = ours(pixels, output_attentions=output_attentions)
    n = ours.config.num_patches
    assert got.last_hidden_state.shape == (pixels.shape[0], 1 + n, ours.config.hidden_size)
    assert max_diff(got.last_hidden_state, expected.last_hidden_state) < TOL
    if CONFIGS[name]["pool"]:
        assert max_diff(got.pooler_output, expected.pooler_output) < TOL
    else:
        assert ours.pooler is None and got.pooler_output is None and expected.pooler_output is None


@pytest.mark.parametrize("name", ["gelu-pool", "gelu_new-nopool-gray", "tanh-deep-sizes-as-pairs"])
def test_attentions_and_hidden_states_match(name: str) -> None:
    model, pixels = hf_vit(**CONFIGS[name])
    ours = ViT.from_transformers(model)
    with torch.no_grad():
        expected = model(pixel_values=pixels, output_attentions=True, output_hidden_states=True)
        got = ours(pixels, output_attentions=True, output_hidden_states=True)
    layers, heads = ours.config.num_hidden_layers, ours.config.num_attention_heads
    tokens = 1 + ours.config.num_patches
    assert len(got.hidden_states) == len(expected.hidden_states) == layers + 1
    assert len(got.attentions) == len(expected.attentions) == layers
    for a, b in zip(got.hidden_states, expected.hidden_states):
        assert max_diff(a, b) < TOL
    for a, b in zip(got.attentions, expected.attentions):
        assert a.shape == (pixels.shape[0], heads, tokens, tokens)
        assert max_diff(a, b) < TOL
    assert torch.allclose(got.attentions[0].sum(-1), torch.ones(()))


def test_outputs_not_asked_for_are_none() -> None:
    out = ViT(ViTConfig.tiny())(torch.randn(2, 3, 64, 64))
    assert out.hidden_states is None and out.attentions is None


def test_loads_transformers_4_weight_names() -> None:
    """transformers 4.x named the tensors encoder.layer.{i}.attention.attention.query, ...: both load."""
    model, pixels = hf_vit(**CONFIGS["gelu-pool"])
    legacy = {}
    for name, tensor in model.state_dict().items():
        for new, old in (
            ("layers.", "encoder.layer."),
            ("attention.q_proj", "attention.attention.query"),
            ("attention.k_proj", "attention.attention.key"),
            ("attention.v_proj", "attention.attention.value"),
            ("attention.o_proj", "attention.output.dense"),
            ("mlp.fc1", "intermediate.dense"),
            ("mlp.fc2", "output.dense"),
        ):
            name = name.replace(new, old)
        legacy[name] = tensor
    assert "encoder.layer.1.output.dense.weight" in legacy and "layers.1.mlp.fc2.weight" not in legacy
    ours = ViT.from_transformers(SimpleNamespace(config=model.config, state_dict=lambda: legacy))
    with torch.no_grad():
        assert max_diff(ours(pixels).last_hidden_state, model(pixel_values=pixels).last_hidden_state) < TOL


def test_tiny_config_shapes() -> None:
    config = ViTConfig.tiny()
    assert (config.image_size, config.patch_size, config.hidden_size) == (64, 8, 64)
    assert config.num_patches == 64
    out = ViT(config)(torch.randn(2, 3, 64, 64))
    assert out.last_hidden_state.shape == (2, 65, 64)
    assert out.pooler_output.shape == (2, 64)


def test_patchify_is_row_major() -> None:
    images = torch.randn(2, 3, 8, 12)
    patches = patchify(images, 4)
    assert patches.shape == (2, 6, 3 * 4 * 4)
    for row in range(2):
        for col in range(3):
            block = images[:, :, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4]
            assert torch.equal(patches[:, 3 * row + col], block.reshape(2, -1))


@pytest.mark.parametrize("bias", [True, False])
def test_patch_embedding_is_patchify_then_linear(bias: bool) -> None:
    torch.manual_seed(0)
    embed = PatchEmbedding(patch_size=4, num_channels=3, dim=10, bias=bias)
    images = torch.randn(2, 3, 8, 16)  # not square, so that a transposed patch order would show
    linear = nn.Linear(3 * 4 * 4, 10, bias=bias)
    with torch.no_grad():
        linear.weight.copy_(embed.proj.weight.reshape(10, -1))  # (D, C, p, p) -> (D, C*p*p)
        if bias:
            linear.bias.copy_(embed.proj.bias)
        assert max_diff(embed(images), linear(patchify(images, 4))) < TOL


@pytest.mark.parametrize("return_attention", [False, True])
def test_causal_mask_hides_the_future(return_attention: bool) -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(dim=16, num_heads=4)
    x = torch.randn(2, 7, 16)
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    with torch.no_grad():
        out, weights = attn(x, causal, return_attention=return_attention)
        for t in range(1, 8):  # position t - 1 attends to exactly the prefix x[:, :t]
            prefix, _ = attn(x[:, :t])
            assert max_diff(out[:, t - 1], prefix[:, -1]) < TOL
    if return_attention:
        assert weights.shape == (2, 4, 7, 7)
        assert torch.all(weights[..., ~causal] == 0)


def test_padding_mask_and_fully_masked_rows() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(dim=8, num_heads=2)
    x = torch.randn(2, 5, 8)
    lengths = torch.tensor([3, 5])
    keep = (torch.arange(5) < lengths[:, None])[:, None, None, :]  # (B, 1, 1, N)
    with torch.no_grad():
        fused, _ = attn(x, keep)
        explicit, weights = attn(x, keep, return_attention=True)
        alone, _ = attn(x[:1, :3])
        assert max_diff(fused, explicit) < TOL
        assert max_diff(fused[:1, :3], alone) < TOL
        assert torch.all(weights[0, :, :, 3:] == 0)
        nothing = torch.zeros(1, 1, 1, 5, dtype=torch.bool)  # no key allowed: uniform, not NaN
        fused, _ = attn(x, nothing)
        explicit, weights = attn(x, nothing, return_attention=True)
    assert torch.allclose(weights, torch.full_like(weights, 0.2))
    assert max_diff(fused, explicit) < TOL


def test_attention_mask_must_be_bool() -> None:
    attn = MultiHeadAttention(dim=8, num_heads=2)
    with pytest.raises(ValueError, match=r"expected a bool attention_mask .* got dtype torch.float32"):
        attn(torch.randn(1, 3, 8), torch.ones(3, 3))


@pytest.mark.parametrize(
    "shape, message",
    [
        ((3, 64, 64), r"expected pixel_values of shape \(B, 3, 64, 64\), got \(3, 64, 64\)"),
        ((2, 1, 64, 64), r"expected pixel_values of shape \(B, 3, 64, 64\), got \(2, 1, 64, 64\)"),
        ((2, 3, 32, 32), r"expected pixel_values of shape \(B, 3, 64, 64\), got \(2, 3, 32, 32\)"),
    ],
)
def test_bad_pixel_values(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ViT(ViTConfig.tiny())(torch.randn(shape))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(hidden_size=30, num_attention_heads=4),
         r"hidden_size must be divisible by num_attention_heads, got hidden_size=30 and num_attention_heads=4"),
        (dict(image_size=30, patch_size=8), r"image_size must be divisible by patch_size, got image_size=30 "
                                            r"and patch_size=8"),
        (dict(hidden_act="swiglu"), r"unknown hidden_act 'swiglu', expected one of \['gelu', "),
    ],
)
def test_bad_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ViTConfig(**kwargs)


def test_bad_blocks() -> None:
    with pytest.raises(ValueError, match=r"dim must be divisible by num_heads, got dim=10 and num_heads=3"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match=r"unknown activation 'swish', expected one of \["):
        make_activation("swish")
    with pytest.raises(ValueError, match=r"expected images of shape \(B, C, H, W\), got \(3, 8, 8\)"):
        patchify(torch.randn(3, 8, 8), 4)
    with pytest.raises(ValueError, match=r"divisible by patch_size=4, got 8x10"):
        patchify(torch.randn(1, 3, 8, 10), 4)
    embed = PatchEmbedding(patch_size=4, num_channels=3, dim=8)
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, H, W\), got \(1, 1, 8, 8\)"):
        embed(torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"divisible by patch_size=4, got 10x8"):
        embed(torch.randn(1, 3, 10, 8))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image_size=[16, 8]), r"only square image_size is supported, got \(16, 8\)"),
        (dict(patch_size=[4, 2]), r"only square patch_size is supported, got \(4, 2\)"),
        (dict(pooler_act="relu"), r"only a tanh pooler .* got pooler_act='relu' and pooler_output_size=32"),
        (dict(pooler_output_size=20), r"only a tanh pooler .* got pooler_act='tanh' and pooler_output_size=20"),
    ],
)
def test_unsupported_transformers_configs(kwargs: dict, message: str) -> None:
    base = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37, image_size=16,
                patch_size=4)
    model, _ = hf_vit(**{**base, **kwargs})
    with pytest.raises(ValueError, match=message):
        ViT.from_transformers(model)


def test_from_transformers_wants_a_vit_model() -> None:
    config = transformers.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=16, image_size=8, patch_size=4, num_labels=3)
    classifier = transformers.ViTForImageClassification(config)
    with pytest.raises(TypeError, match=r"expected a transformers ViTModel, got ViTForImageClassification"):
        ViT.from_transformers(classifier)
    assert ViT.from_transformers(classifier.vit).pooler is None
    with pytest.raises(TypeError, match=r"expected a transformers ViTModel, got Linear"):
        ViT.from_transformers(nn.Linear(2, 2))
