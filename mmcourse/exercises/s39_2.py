"""Hidden cases of the exercises of §39.2 (audio, video, tables and code)."""
from __future__ import annotations

import numpy as np

from .core import Case, register


def _conv_geometry_cases() -> list[Case]:
    from ..models.wav2vec2 import Wav2Vec2FeatureEncoderConfig

    stacks = [
        ((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), 16_000),  # wav2vec 2.0 Base, one second
        ((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), 400),  # exactly one receptive field
        ((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), 399),  # one sample short: no frame
        ((4,), (4,), 10),
        ((7, 5, 3), (3, 2, 1), 1234),
        ((2, 2, 2, 2), (1, 1, 1, 1), 50),
        ((3, 2), (5, 4), 999),  # kernels smaller than strides: some samples are never seen
        ((11, 5, 5), (4, 3, 2), 48_000),
    ]
    cases = []
    for kernels, strides, samples in stacks:
        config = Wav2Vec2FeatureEncoderConfig(conv_dim=(1,) * len(kernels), conv_kernel=kernels,
                                              conv_stride=strides)
        expected = (config.output_length(samples), config.receptive_field(), config.hop_length())
        cases.append(Case((samples, list(kernels), list(strides)), expected,
                          f"{samples} samples, kernels {kernels}, strides {strides}",
                          hint="apply L -> (L - k) // s + 1 layer by layer (0 frames once it drops "
                               "below 1); the field grows by (k - 1) times the product of the "
                               "earlier strides, starting at 1; the hop is the product of all "
                               "strides."))
    return cases


def _mel_htk_cases() -> list[Case]:
    from ..audio import mel_filterbank

    settings = [(16_000, 400, 40), (16_000, 512, 80), (8_000, 256, 23), (22_050, 1024, 64),
                (16_000, 64, 10)]
    return [Case((sr, n_fft, n_mels),
                 mel_filterbank(sr, n_fft, n_mels, htk=True, norm=None).numpy(),
                 f"sample_rate={sr}, n_fft={n_fft}, n_mels={n_mels}",
                 hint="n_mels + 2 edges equally spaced in HTK mels from 0 to sample_rate / 2, "
                      "converted back to Hz; the FFT bins sit at k * sample_rate / n_fft; each "
                      "triangle peaks at 1 and is not normalised.")
            for sr, n_fft, n_mels in settings]


def _segment_cases() -> list[Case]:
    from ..data.video import sample_indices

    cases = []
    for num_frames, k, seed in ((16, 8, 0), (16, 4, 1), (100, 7, 2), (10, 10, 3), (5, 8, 4),
                                (301, 16, 5)):
        offsets = np.random.default_rng(seed).random(k)
        expected = sample_indices(num_frames, k, "segment", rng=np.random.default_rng(seed))
        cases.append(Case((num_frames, k, offsets), expected, f"{num_frames} frames, k={k}",
                          hint="segment i spans [i * n / k, (i + 1) * n / k); take the floor of "
                               "its start plus offsets[i] times its length, as int64."))
    return cases


register("39.2.conv_geometry", _conv_geometry_cases, atol=0.0)
register("39.2.mel_htk", _mel_htk_cases, atol=1e-6)
register("39.2.segment_sample", _segment_cases, atol=0.0)
