"""The convolutional feature encoder of wav2vec 2.0 and HuBERT, written from scratch.

A stack of 1-D convolutions turns a raw waveform (B, samples) into a sequence of feature vectors
(B, channels, frames): the first layer is normalised either per channel over time (GroupNorm with
one group per channel, ``feat_extract_norm="group"``: wav2vec 2.0 Base, HuBERT Base and wav2vec
2.0 Large trained on LibriSpeech 960 h) or every layer per frame over channels (LayerNorm with
convolution biases, ``"layer"``: wav2vec 2.0 Large LV-60k, XLSR and HuBERT Large); every layer
ends in a GELU.
With the default strides (5, 2, 2, 2, 2, 2, 2) a frame is 320 samples, 20 ms at 16 kHz, and sees a
window of 400 samples, 25 ms. ``Wav2Vec2FeatureEncoder.from_transformers`` loads the weights of a
``transformers.Wav2Vec2Model`` (or ``HubertModel``) and gives its feature encoder's output.

Built in §39.2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..nn import make_activation


@dataclass
class Wav2Vec2FeatureEncoderConfig:
    """The feature encoder's hyper-parameters, named as in ``transformers.Wav2Vec2Config``.

    ``conv_dim``, ``conv_kernel`` and ``conv_stride`` hold one entry per convolutional layer.
    Built in §39.2.
    """

    conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"

    def __post_init__(self) -> None:
        self.conv_dim, self.conv_kernel, self.conv_stride = (
            tuple(int(v) for v in values)
            for values in (self.conv_dim, self.conv_kernel, self.conv_stride))
        lengths = (len(self.conv_dim), len(self.conv_kernel), len(self.conv_stride))
        if len(set(lengths)) != 1 or lengths[0] == 0:
            raise ValueError("conv_dim, conv_kernel and conv_stride need one entry per layer "
                             f"(at least one), got lengths {lengths}")
        if min(self.conv_dim + self.conv_kernel + self.conv_stride) <= 0:
            raise ValueError("conv_dim, conv_kernel and conv_stride must be positive, got "
                             f"{self.conv_dim}, {self.conv_kernel}, {self.conv_stride}")
        if self.feat_extract_norm not in ("group", "layer"):
            raise ValueError("feat_extract_norm must be 'group' or 'layer', "
                             f"got {self.feat_extract_norm!r}")
        make_activation(self.feat_extract_activation)  # raises for an unknown name

    @property
    def num_layers(self) -> int:
        return len(self.conv_dim)

    def hop_length(self) -> int:
        """Samples between consecutive output frames: the product of the strides (320 here)."""
        return math.prod(self.conv_stride)

    def receptive_field(self) -> int:
        """Samples one output frame sees: ``1 + sum_l (k_l - 1) * prod_{i<l} s_i`` (400 here)."""
        field, jump = 1, 1
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            field, jump = field + (kernel - 1) * jump, jump * stride
        return field

    def frame_rate(self, sample_rate: int = 16_000) -> float:
        """Output frames per second for audio at ``sample_rate`` Hz (50.0 by default at 16 kHz)."""
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        return sample_rate / self.hop_length()

    def output_length(self, num_samples: int) -> int:
        """Frames made from ``num_samples`` samples: ``L -> (L - k) // s + 1`` layer after layer
        (0 if the input is shorter than the receptive field)."""
        length = int(num_samples)
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            length = (length - kernel) // stride + 1
            if length <= 0:
                return 0
        return length


class ConvLayer(nn.Module):
    """One layer of the encoder: Conv1d, then GroupNorm (one group per channel: each channel
    normalised over time), LayerNorm (each frame normalised over channels) or nothing, then the
    activation. (B, C_in, T) -> (B, C_out, (T - kernel) // stride + 1). Built in §39.2."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, bias: bool,
                 norm: str | None, activation: str) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=kernel, stride=stride,
                              bias=bias)
        if norm == "group":  # one group per channel
            self.norm = nn.GroupNorm(num_groups=out_channels, num_channels=out_channels)
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_channels)
        elif norm is None:
            self.norm = None
        else:
            raise ValueError(f"norm must be 'group', 'layer' or None, got {norm!r}")
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, C_in, T) -> (B, C_out, T')
        if isinstance(self.norm, nn.LayerNorm):
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)  # each frame over its channels
        elif self.norm is not None:
            x = self.norm(x)  # normalise each channel over time
        return self.act(x)


class Wav2Vec2FeatureEncoder(nn.Module):
    """wav2vec 2.0's convolutional feature encoder: (B, samples) -> features (B, C, frames).

    Built in §39.2.
    """

    def __init__(self, config: Wav2Vec2FeatureEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or Wav2Vec2FeatureEncoderConfig()
        in_dims = (1,) + config.conv_dim[:-1]
        layers = zip(in_dims, config.conv_dim, config.conv_kernel, config.conv_stride)
        self.conv_layers = nn.ModuleList(
            ConvLayer(c_in, c_out, k, s, config.conv_bias, self._norm(i),
                      config.feat_extract_activation)
            for i, (c_in, c_out, k, s) in enumerate(layers)
        )

    def _norm(self, layer: int) -> str | None:
        """The normalisation after conv layer ``layer``: every layer's LayerNorm for "layer",
        the first layer's GroupNorm only for "group"."""
        if self.config.feat_extract_norm == "layer":
            return "layer"
        return "group" if layer == 0 else None

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        """``input_values`` (B, samples), audio as the ``transformers`` feature extractor gives it
        (zero mean, unit variance under its default ``do_normalize``, as the LV-60k models were
        trained; the original Base and Large LibriSpeech checkpoints read unnormalised audio) ->
        (B, conv_dim[-1], frames) with ``frames = config.output_length(samples)``."""
        if input_values.dim() != 2:
            raise ValueError("expected input_values of shape (B, samples), "
                             f"got {tuple(input_values.shape)}")
        if input_values.shape[1] < self.config.receptive_field():
            raise ValueError(f"need at least {self.config.receptive_field()} samples "
                             f"(the receptive field), got {input_values.shape[1]}")
        x = input_values[:, None]  # (B, samples) -> (B, 1, samples)
        for layer in self.conv_layers:
            x = layer(x)  # (B, C, T) -> (B, C', T')
        return x

    @classmethod
    def from_transformers(cls, model: nn.Module) -> Wav2Vec2FeatureEncoder:
        """Our encoder with the configuration and feature-encoder weights of ``model``, a
        ``transformers.Wav2Vec2Model`` or ``HubertModel`` (or a ``*ForCTC``/``*ForPreTraining``
        holding one), in eval mode. Built in §39.2."""
        for attribute in ("wav2vec2", "hubert"):
            model = getattr(model, attribute, model)
        hf = getattr(model, "config", None)
        known = getattr(hf, "model_type", None) in ("wav2vec2", "hubert")
        if not known or not hasattr(model, "feature_extractor"):
            raise TypeError("expected a transformers Wav2Vec2Model or HubertModel, "
                            f"got {type(model).__name__}")
        config = Wav2Vec2FeatureEncoderConfig(
            conv_dim=hf.conv_dim, conv_kernel=hf.conv_kernel, conv_stride=hf.conv_stride,
            conv_bias=hf.conv_bias, feat_extract_norm=hf.feat_extract_norm,
            feat_extract_activation=hf.feat_extract_activation)
        encoder = cls(config)
        state = {name.replace("layer_norm", "norm"): tensor
                 for name, tensor in model.feature_extractor.state_dict().items()}
        encoder.load_state_dict(state)
        return encoder.eval()
