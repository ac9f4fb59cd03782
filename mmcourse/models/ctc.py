"""A wav2vec 2.0-style recogniser trained with CTC: §39.2's convolutional feature encoder on the
raw waveform, a projection, a convolutional relative position embedding, pre-norm transformer
blocks, and a linear layer giving, for every 20 ms frame, a distribution over characters and the
CTC *blank*. No decoder: each frame is classified on its own, and the transcript is the frames'
labels with repeats merged and blanks removed. Built in §41.1, as the contrast to Whisper.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.models.wav2vec2 import Wav2Vec2FeatureEncoder, Wav2Vec2FeatureEncoderConfig
from mmcourse.models.whisper import WhisperEncoderLayer


@dataclass
class CTCConfig:
    """Sizes of a :class:`CTCRecognizer`; ``vocab_size`` counts the blank (id 0)."""

    vocab_size: int
    conv_dim: tuple[int, ...] = (32, 32, 32, 64, 64, 64, 64)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 256
    position_kernel: int = 31
    position_groups: int = 8
    features: Wav2Vec2FeatureEncoderConfig = field(init=False)

    def __post_init__(self) -> None:
        self.features = Wav2Vec2FeatureEncoderConfig(self.conv_dim, self.conv_kernel,
                                                     self.conv_stride)
        if self.d_model % self.heads or self.d_model % self.position_groups:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads "
                             f"({self.heads}) and position_groups ({self.position_groups})")
        if self.position_kernel % 2 == 0:
            raise ValueError(f"position_kernel must be odd; got {self.position_kernel}")


class CTCRecognizer(nn.Module):
    """Raw audio (B, samples) -> per-frame log-probabilities (B, frames, vocab_size).

    Built in §41.1."""

    def __init__(self, config: CTCConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.feature_encoder = Wav2Vec2FeatureEncoder(config.features)
        self.feature_norm = nn.LayerNorm(config.conv_dim[-1])
        self.projection = nn.Linear(config.conv_dim[-1], d)
        self.position = nn.Conv1d(d, d, config.position_kernel, padding=config.position_kernel // 2,
                                  groups=config.position_groups)
        self.layers = nn.ModuleList(WhisperEncoderLayer(d, config.heads, config.ffn_dim)
                                    for _ in range(config.layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.vocab_size)

    def output_length(self, samples: int) -> int:
        """How many frames ``samples`` of audio give (one per 20 ms with the default strides)."""
        return self.config.features.output_length(samples)

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        x = self.feature_encoder(input_values).transpose(1, 2)  # (B, T, C)
        x = self.projection(self.feature_norm(x))  # (B, T, D)
        x = x + F.gelu(self.position(x.transpose(1, 2))).transpose(1, 2)  # relative positions
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x)).log_softmax(-1)  # (B, T, vocab)
