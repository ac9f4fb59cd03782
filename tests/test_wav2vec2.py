"""The from-scratch wav2vec 2.0 / HuBERT feature encoder against transformers' (tiny random
models, no download): many layer shapes, both normalisations, with and without bias, batch > 1."""
from __future__ import annotations

import pytest
import torch
import transformers

from mmcourse.models import Wav2Vec2FeatureEncoder, Wav2Vec2FeatureEncoderConfig

TOL = 1e-5
BASE = dict(conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2))

CONFIGS = {
    "base-like-group": dict(conv_dim=(32,) * 7, **BASE, feat_extract_norm="group", conv_bias=False),
    "large-like-layer-bias": dict(conv_dim=(24,) * 7, **BASE, feat_extract_norm="layer",
                                  conv_bias=True),
    "three-layers-mixed-widths": dict(conv_dim=(8, 16, 12), conv_kernel=(7, 5, 3),
                                      conv_stride=(3, 2, 1), feat_extract_norm="group",
                                      conv_bias=True),
    "one-layer-layernorm": dict(conv_dim=(20,), conv_kernel=(4,), conv_stride=(4,),
                                feat_extract_norm="layer", conv_bias=False),
    "stride-one-relu": dict(conv_dim=(6, 6, 6, 6), conv_kernel=(2, 2, 2, 2),
                            conv_stride=(1, 1, 1, 1), feat_extract_norm="group",
                            feat_extract_activation="relu", conv_bias=False),
    "kernel-smaller-than-stride": dict(conv_dim=(16, 9), conv_kernel=(3, 2), conv_stride=(5, 4),
                                       feat_extract_norm="layer",
                                       feat_extract_activation="gelu_new", conv_bias=True),
}
TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)


def hf_model(kind: str = "wav2vec2", seed: int = 0, **conv) -> torch.nn.Module:
    """A tiny random transformers Wav2Vec2Model (or HubertModel) whose norm weights and biases are
    redrawn away from 1 and 0, so that a swapped or missing tensor shows."""
    torch.manual_seed(seed)
    config_cls, model_cls = {
        "wav2vec2": (transformers.Wav2Vec2Config, transformers.Wav2Vec2Model),
        "hubert": (transformers.HubertConfig, transformers.HubertModel),
    }[kind]
    model = model_cls(config_cls(**TINY, **conv)).eval()
    with torch.no_grad():
        for name, param in model.feature_extractor.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                centre = 1.0 if name.endswith("weight") else 0.0
                param.copy_(0.2 * torch.randn_like(param) + centre)
    return model


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("batch", [1, 3])
def test_matches_transformers_feature_encoder(name: str, batch: int) -> None:
    model = hf_model(**CONFIGS[name])
    ours = Wav2Vec2FeatureEncoder.from_transformers(model)
    assert not ours.training
    samples = 1234 + 17 * batch
    x = torch.randn(batch, samples)
    with torch.no_grad():
        expected = model.feature_extractor(x)
        got = ours(x)
    frames = int(model._get_feat_extract_output_lengths(samples))
    assert got.shape == (batch, CONFIGS[name]["conv_dim"][-1], frames)
    assert ours.config.output_length(samples) == frames
    assert max_diff(got, expected) < TOL


def test_hubert_and_wrapped_models() -> None:
    model = hf_model("hubert", **CONFIGS["three-layers-mixed-widths"])
    x = torch.randn(2, 999)
    with torch.no_grad():
        assert max_diff(Wav2Vec2FeatureEncoder.from_transformers(model)(x),
                        model.feature_extractor(x)) < TOL
    torch.manual_seed(1)
    config = transformers.Wav2Vec2Config(**TINY, vocab_size=10, **CONFIGS["one-layer-layernorm"])
    ctc = transformers.Wav2Vec2ForCTC(config).eval()
    with torch.no_grad():
        assert max_diff(Wav2Vec2FeatureEncoder.from_transformers(ctc)(x),
                        ctc.wav2vec2.feature_extractor(x)) < TOL


def test_weights_are_copied_not_shared() -> None:
    model = hf_model(**CONFIGS["large-like-layer-bias"])
    ours = Wav2Vec2FeatureEncoder.from_transformers(model)
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in model.feature_extractor.parameters())
    with torch.no_grad():
        ours.conv_layers[0].conv.weight.zero_()
    assert model.feature_extractor.conv_layers[0].conv.weight.abs().sum() > 0


@pytest.mark.parametrize("name", CONFIGS)
def test_receptive_field_hop_and_lengths(name: str) -> None:
    conv = {k: CONFIGS[name][k] for k in ("conv_dim", "conv_kernel", "conv_stride")}
    config = Wav2Vec2FeatureEncoderConfig(**conv)
    model = hf_model(**CONFIGS[name])
    field, hop = config.receptive_field(), config.hop_length()
    for samples in (field, field + 1, 5000, 16_000):
        assert config.output_length(samples) == int(model._get_feat_extract_output_lengths(samples))
    assert config.output_length(field) == 1 and config.output_length(field - 1) == 0
    assert config.output_length(field + hop) == 2
    # measured, not computed: the input samples that frame t depends on (the gradient's support)
    layer_norm = Wav2Vec2FeatureEncoderConfig(**conv, feat_extract_norm="layer")
    encoder = Wav2Vec2FeatureEncoder(layer_norm).double()
    x = torch.randn(1, 3 * field + 5 * hop, dtype=torch.float64, requires_grad=True)
    t = 2
    encoder(x)[0, :, t].square().sum().backward()
    support = x.grad[0].nonzero().flatten()
    assert support[0].item() == t * hop
    assert support[-1].item() == t * hop + field - 1


def test_base_geometry() -> None:
    config = Wav2Vec2FeatureEncoderConfig()
    assert config.receptive_field() == 400 and config.hop_length() == 320
    assert config.frame_rate(16_000) == 50.0 and config.frame_rate(8_000) == 25.0
    assert config.output_length(16_000) == 49


def test_errors_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match="one entry per layer"):
        Wav2Vec2FeatureEncoderConfig(conv_dim=(4, 4), conv_kernel=(3,), conv_stride=(2,))
    with pytest.raises(ValueError, match="'group' or 'layer'"):
        Wav2Vec2FeatureEncoderConfig(feat_extract_norm="batch")
    with pytest.raises(ValueError, match="unknown activation"):
        Wav2Vec2FeatureEncoderConfig(feat_extract_activation="swishy")
    with pytest.raises(ValueError, match="sample_rate must be positive"):
        Wav2Vec2FeatureEncoderConfig().frame_rate(0)
    config = Wav2Vec2FeatureEncoderConfig(conv_dim=(4,), conv_kernel=(10,), conv_stride=(5,))
    encoder = Wav2Vec2FeatureEncoder(config)
    with pytest.raises(ValueError, match=r"\(B, samples\)"):
        encoder(torch.randn(2, 1, 100))
    with pytest.raises(ValueError, match="at least 10 samples"):
        encoder(torch.randn(2, 9))
    with pytest.raises(TypeError, match="Wav2Vec2Model"):
        Wav2Vec2FeatureEncoder.from_transformers(torch.nn.Linear(2, 2))
