"""A small speaker-embedding model (x-vector style), to measure whose voice a recording has.

Log-mel frames pass through a few dilated 1-D convolutions (a time-delay network: each frame
sees a widening window around it); *attentive statistics pooling* turns the frames into one
vector, the weighted mean and standard deviation of the frames under learnt attention weights
(so silence can be ignored); a linear layer and L2 normalisation give the embedding. The
model is trained to tell its training voices apart with an additive-margin softmax
(AM-softmax: the cosine to the true voice's weight vector must win by a margin), which makes
embeddings of one voice cluster by angle, so that the cosine between two embeddings measures
how alike two voices are, also for voices never seen in training. Built in §41.2.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.audio import log_mel_spectrogram


@dataclass
class SpeakerConfig:
    """The sizes of a :class:`SpeakerEncoder`: its front end (25 ms windows every 10 ms), one
    convolution per entry of ``kernel_sizes``/``dilations``, the embedding, and the
    AM-softmax's ``margin`` and ``scale`` over ``num_speakers`` training voices
    (``margin`` 0: a plain softmax over cosines). Built in §41.2."""

    num_speakers: int
    sample_rate: int = 16_000
    n_mels: int = 40
    channels: int = 64
    kernel_sizes: tuple[int, ...] = (5, 3, 3, 1)
    dilations: tuple[int, ...] = (1, 2, 3, 1)
    embedding_dim: int = 64
    margin: float = 0.2
    scale: float = 30.0

    def __post_init__(self) -> None:
        self.kernel_sizes, self.dilations = tuple(self.kernel_sizes), tuple(self.dilations)
        for name in ("num_speakers", "sample_rate", "n_mels", "channels", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if len(self.kernel_sizes) != len(self.dilations) or not self.kernel_sizes \
                or min(self.kernel_sizes + self.dilations) < 1 \
                or any(k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"kernel_sizes (odd) and dilations (positive) must be non-empty and "
                             f"of one length, got {self.kernel_sizes} and {self.dilations}")
        if not 0 <= self.margin < 1 or self.scale <= 0:
            raise ValueError(f"margin must lie in [0, 1) and scale be positive, got margin="
                             f"{self.margin}, scale={self.scale}")


def speaker_features(waveforms: Sequence[np.ndarray | torch.Tensor], sample_rate: int,
                     n_mels: int = 40, device: torch.device | str | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel features of mono waveforms, padded: (B, n_mels, T) and the mask (B, T) of real
    frames. dB with an 80 dB floor below each utterance's peak, minus the utterance's mean
    over its real frames (so the gain of a recording does not matter), divided by 20;
    padded frames are 0. Computed on ``device`` (default: the first waveform's). Built in §41.2."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer number of Hz, got "
                         f"{sample_rate!r}")
    if len(waveforms) == 0:
        raise ValueError("waveforms must hold at least one utterance")
    waves = [torch.as_tensor(np.asarray(w, dtype=np.float32)) if not isinstance(w, torch.Tensor)
             else w.float() for w in waveforms]
    for i, w in enumerate(waves):
        if w.dim() != 1 or w.numel() == 0:
            raise ValueError(f"waveforms[{i}] must be a non-empty 1-D array of samples, got "
                             f"shape {tuple(w.shape)}")
    device = waves[0].device if device is None else torch.device(device)
    n_fft, hop = round(0.025 * sample_rate), round(0.010 * sample_rate)
    batch = torch.zeros(len(waves), max(w.numel() for w in waves), device=device)
    for i, w in enumerate(waves):
        batch[i, : w.numel()] = w.to(device)
    lengths = torch.tensor([1 + w.numel() // hop for w in waves]).to(device)  # frames (B,)
    db = log_mel_spectrogram(batch, sample_rate, n_fft, hop, n_mels)  # (B, n_mels, T)
    mask = torch.arange(db.shape[-1], device=device)[None] < lengths[:, None]  # (B, T)
    m = mask[:, None].to(db.dtype)
    mean = (db * m).sum((1, 2), keepdim=True) / (m.sum((1, 2), keepdim=True) * n_mels)
    return (db - mean) / 20 * m, mask


class AttentiveStatsPooling(nn.Module):
    """Frames (B, C, T) -> (B, 2C): the mean and standard deviation of the frames under
    attention weights ``softmax_t(v . tanh(W h_t + b))`` over the real frames (Okabe et al.
    2018). Built in §41.2."""

    def __init__(self, channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.attention = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.Tanh(),
                                       nn.Conv1d(hidden, 1, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.attention(x)[:, 0].masked_fill(~mask, -torch.inf)  # (B, T)
        weights = scores.softmax(-1)[:, None]  # (B, 1, T)
        mean = (weights * x).sum(-1)  # (B, C)
        var = (weights * x.pow(2)).sum(-1) - mean.pow(2)
        return torch.cat([mean, var.clamp_min(1e-6).sqrt()], dim=-1)


class SpeakerEncoder(nn.Module):
    """Log-mel features (B, n_mels, T) -> unit-norm speaker embeddings (B, embedding_dim),
    with an AM-softmax head over the training voices (``classifier``, one weight vector per
    voice). Built in §41.2."""

    def __init__(self, config: SpeakerConfig) -> None:
        super().__init__()
        self.config = config
        c, dims = config.channels, [config.n_mels] + [config.channels] * len(config.kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Conv1d(dims[i], c, k, dilation=d, padding=d * (k - 1) // 2)  # T frames kept
            for i, (k, d) in enumerate(zip(config.kernel_sizes, config.dilations)))
        self.norms = nn.ModuleList(nn.LayerNorm(c) for _ in config.kernel_sizes)
        self.pool = AttentiveStatsPooling(c)
        self.proj = nn.Linear(2 * c, config.embedding_dim)
        self.classifier = nn.Parameter(torch.randn(config.num_speakers, config.embedding_dim))

    def features(self, waveforms: Sequence[np.ndarray | torch.Tensor], sample_rate: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`speaker_features` with this model's settings, on its device; ``sample_rate``
        must be the model's."""
        if sample_rate != self.config.sample_rate:
            raise ValueError(f"sample_rate must be the model's {self.config.sample_rate} Hz "
                             f"(resample the audio first), got {sample_rate!r}")
        device = self.classifier.device
        return speaker_features(waveforms, sample_rate, self.config.n_mels, device)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if features.dim() != 3 or features.shape[1] != self.config.n_mels:
            raise ValueError(f"expected features of shape (B, {self.config.n_mels}, T), got "
                             f"{tuple(features.shape)}")
        if mask is None:
            mask = torch.ones_like(features[:, 0], dtype=torch.bool)
        keep = mask[:, None].to(features.dtype)  # padded frames stay 0, as a lone clip's pad
        x = features * keep
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(conv(x))  # (B, C_in, T) -> (B, C, T)
            x = norm(x.transpose(1, 2)).transpose(1, 2) * keep  # each frame over channels
        return F.normalize(self.proj(self.pool(x, mask)), dim=-1)  # (B, 2C) -> (B, E)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None
               ) -> torch.Tensor:
        """``scale`` times the cosines (B, num_speakers) between embeddings and the voices'
        weight vectors, the true voice's less ``margin`` when ``labels`` (B,) are given."""
        cosines = embeddings @ F.normalize(self.classifier, dim=-1).t()
        if labels is not None:
            cosines = cosines - self.config.margin * F.one_hot(labels, cosines.shape[-1])
        return self.config.scale * cosines

    def loss(self, features: torch.Tensor, mask: torch.Tensor | None, labels: torch.Tensor
             ) -> torch.Tensor:
        """The AM-softmax loss of a batch of utterances labelled with voice indices (B,)."""
        return F.cross_entropy(self.logits(self(features, mask), labels), labels)

    @torch.no_grad()
    def embed(self, waveforms: Sequence[np.ndarray | torch.Tensor], sample_rate: int,
              batch_size: int = 64) -> torch.Tensor:
        """Unit-norm embeddings (N, embedding_dim) of N waveforms at ``sample_rate`` (which
        must be the model's), on the model's device, ``batch_size`` at a time."""
        if len(waveforms) == 0:
            raise ValueError("waveforms must hold at least one utterance")
        out = [self(*self.features(waveforms[i: i + batch_size], sample_rate))
               for i in range(0, len(waveforms), batch_size)]
        return torch.cat(out)


def speaker_loss(model: SpeakerEncoder, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The loss of a ``(features, mask, labels)`` batch, for :func:`mmcourse.train.fit`.
    Built in §41.2."""
    return model.loss(*batch)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosines (N, M) between the rows of ``a`` (N, E) and of ``b`` (M, E); a 1-D input is one
    row. Built in §41.2."""
    a, b = (x[None] if x.dim() == 1 else x for x in (a, b))
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected a (N, E) and b (M, E) with the same E, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t()


def speaker_similarity(model: SpeakerEncoder, waveforms: Sequence[np.ndarray | torch.Tensor],
                       references: Sequence[np.ndarray | torch.Tensor], sample_rate: int
                       ) -> torch.Tensor:
    """The cosine (N,) between the embedding of each waveform and of its reference (e.g. a
    generated utterance and its acoustic prompt), the SIM of speech-generation papers.
    Built in §41.2."""
    if len(waveforms) != len(references):
        raise ValueError(f"expected one reference per waveform, got {len(waveforms)} waveforms "
                         f"and {len(references)} references")
    return (model.embed(waveforms, sample_rate) * model.embed(references, sample_rate)).sum(-1)


def save_speaker(path, model: SpeakerEncoder, voices: Sequence[str], notes: dict) -> None:
    """Write a SpeakerEncoder's weights in float16 to a safetensors file, with its
    configuration, the training ``voices`` (row i of the classifier is voice i) and ``notes``
    in the metadata. Built in §41.2."""
    import json
    from dataclasses import asdict

    from safetensors.torch import save_file

    if len(voices) != model.config.num_speakers:
        raise ValueError(f"expected {model.config.num_speakers} voices, got {len(voices)}")
    state = {k: v.detach().cpu().to(torch.float16).clone() for k, v in model.state_dict().items()}
    metadata = {"config": json.dumps(asdict(model.config)), "voices": json.dumps(list(voices)),
                "notes": json.dumps(notes), "format": "mmcourse.SpeakerEncoder"}
    save_file(state, str(path), metadata=metadata)


def load_speaker(path) -> tuple[SpeakerEncoder, list[str], dict]:
    """The ``(model, voices, notes)`` saved by :func:`save_speaker`, in float32 and eval mode,
    on the CPU. Built in §41.2."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != "mmcourse.SpeakerEncoder":
        raise ValueError(f"{path} was not written by save_speaker")
    model = SpeakerEncoder(SpeakerConfig(**json.loads(metadata["config"])))
    model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    return model.eval(), json.loads(metadata["voices"]), json.loads(metadata["notes"])
