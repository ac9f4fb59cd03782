"""EnCodec, written from scratch: a convolutional autoencoder whose bottleneck is a residual
vector quantiser, so that audio becomes a few rows of integer codes a language model can predict.

The encoder (SEANet) is a convolution, then one stage per ratio in ``reversed(upsampling_ratios)``
of residual units followed by a strided convolution that divides the time axis by the ratio
and doubles the channels, then an LSTM (two layers; added back to its input), ELU and a
last convolution to ``hidden_size``. A hop of ``prod(upsampling_ratios)`` samples (320 at 24 kHz:
75 frames a second) becomes one vector. The decoder mirrors it with transposed convolutions. Every
convolution pads itself so that ``L`` samples give ``ceil(L / stride)`` frames: causally (all on
the left) or split around the window, with ``pad_mode``; each is weight-normalised or followed by
a GroupNorm over channels and time (``norm_type``). The quantiser replaces each frame by the sum
of one vector from each of ``n`` codebooks, the k-th chosen to fit what the first k - 1 missed.

Parameter names follow ``transformers``' ``EncodecModel`` (its codebooks' ``.codebook.`` level
dropped), so :meth:`Codec.from_transformers` loads its weights one to one. The training machinery
of the quantiser (k-means initialisation, EMA updates, dead-code restarts, commitment loss,
quantiser dropout) has no counterpart there; it follows SoundStream and EnCodec's training code.
Built in §41.2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.models.rvq import ResidualVectorQuantizer

_PAD_MODES = ("reflect", "constant", "replicate", "circular")
_NORMS = ("weight_norm", "time_group_norm")


@dataclass
class CodecConfig:
    """The sizes of a :class:`Codec`, named as in ``transformers.EncodecConfig`` (the defaults are
    ``facebook/encodec_24khz``'s: 32 codebooks of 1024 codes, 75 frames a second), followed by
    the quantiser's training settings. Built in §41.2."""

    sampling_rate: int = 24_000
    hidden_size: int = 128
    num_filters: int = 32
    num_residual_layers: int = 1
    upsampling_ratios: tuple[int, ...] = (8, 5, 4, 2)
    norm_type: str = "weight_norm"
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_growth_rate: int = 2
    use_causal_conv: bool = True
    pad_mode: str = "reflect"
    compress: int = 2
    num_lstm_layers: int = 2
    trim_right_ratio: float = 1.0
    use_conv_shortcut: bool = True
    codebook_size: int = 1024
    num_quantizers: int = 32
    decay: float = 0.99  # EMA of the codebooks
    epsilon: float = 1e-5  # Laplace smoothing of the cluster sizes
    kmeans_iters: int = 10  # Lloyd iterations of the initialisation
    dead_code_threshold: float = 2.0  # codes with a smaller EMA cluster size are restarted
    quantizer_dropout: bool = False  # train with a random number of codebooks per batch

    def __post_init__(self) -> None:
        self.upsampling_ratios = tuple(int(r) for r in self.upsampling_ratios)
        if not self.upsampling_ratios or min(self.upsampling_ratios) < 1:
            raise ValueError(f"upsampling_ratios must be positive integers (at least one), got "
                             f"{self.upsampling_ratios}")
        if self.norm_type not in _NORMS:
            raise ValueError(f"norm_type must be one of {_NORMS}, got {self.norm_type!r}")
        if self.pad_mode not in _PAD_MODES:
            raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got {self.pad_mode!r}")
        if not self.use_causal_conv and self.trim_right_ratio != 1.0:
            raise ValueError(f"trim_right_ratio must be 1.0 for non-causal convolutions, got "
                             f"{self.trim_right_ratio}")
        if self.num_filters // self.compress < 1:
            raise ValueError(f"compress ({self.compress}) leaves no channels of num_filters "
                             f"({self.num_filters}) in the residual units")
        for name in ("num_quantizers", "codebook_size", "hidden_size", "sampling_rate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 < self.decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {self.decay}")

    @property
    def hop_length(self) -> int:
        """Samples per frame of codes: the product of the ratios."""
        return math.prod(self.upsampling_ratios)

    @property
    def frame_rate(self) -> int:
        """Frames a second, rounded up as ``EncodecConfig.frame_rate`` is."""
        return math.ceil(self.sampling_rate / self.hop_length)

    def num_quantizers_for_bandwidth(self, bandwidth: float) -> int:
        """How many codebooks ``EncodecModel.encode(bandwidth=)`` uses for ``bandwidth`` kbit/s:
        ``max(1, floor(bandwidth * 1000 / (log2(codebook_size) * frame_rate)))``."""
        if bandwidth <= 0:
            raise ValueError(f"bandwidth must be positive (kbit/s), got {bandwidth}")
        n = int(max(1, math.floor(bandwidth * 1000 /
                                  (math.log2(self.codebook_size) * self.frame_rate))))
        if n > self.num_quantizers:
            raise ValueError(f"bandwidth {bandwidth} kbit/s needs {n} codebooks, the codec has "
                             f"{self.num_quantizers}")
        return n

    def bandwidth(self, num_quantizers: int) -> float:
        """The bit rate, in kbit/s, of ``num_quantizers`` codebooks."""
        return num_quantizers * math.log2(self.codebook_size) * self.frame_rate / 1000


def pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad the last axis of ``x``. A reflection longer than the signal is impossible, so a short
    signal first gets zeros on the right (removed afterwards), as EnCodec does."""
    if mode != "reflect":
        return F.pad(x, (left, right), mode=mode)
    zeros = max(0, max(left, right) - x.shape[-1] + 1)
    padded = F.pad(F.pad(x, (0, zeros)), (left, right), mode="reflect")
    return padded[..., : padded.shape[-1] - zeros]


class CodecConv1d(nn.Module):
    """A convolution that pads itself: ``L`` steps in, ``ceil(L / stride)`` out. The window's
    overhang ``kernel - stride`` goes left (causal) or is split, the larger half on the left;
    ``-L % stride`` more steps on the right complete the last window.
    Weight norm reparametrises the weight as ``g * v / ||v||`` (a norm per output channel);
    ``time_group_norm`` instead normalises the output over channels and time."""

    def __init__(self, config: CodecConfig, in_channels: int, out_channels: int,
                 kernel_size: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation)
        if config.norm_type == "weight_norm":
            self.conv = nn.utils.parametrizations.weight_norm(self.conv)
        else:
            self.norm = nn.GroupNorm(1, out_channels)
        self.causal, self.pad_mode, self.stride = config.use_causal_conv, config.pad_mode, stride
        self.overhang = (kernel_size - 1) * dilation + 1 - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = -x.shape[-1] % self.stride  # so that the last frame's window is whole
        right = 0 if self.causal else self.overhang // 2
        x = pad1d(x, self.overhang - right, right + extra, self.pad_mode)
        x = self.conv(x)  # (B, C_in, L) -> (B, C_out, ceil(L / stride))
        return self.norm(x) if hasattr(self, "norm") else x


class CodecConvTranspose1d(nn.Module):
    """The decoder's upsampling: a transposed convolution (``L`` -> ``L * stride`` after the
    trim) whose overhang ``kernel - stride`` is cut from the right (causal; a share
    ``trim_right_ratio``) or split as in :class:`CodecConv1d`. Its weight is (in, out, kernel),
    so weight norm here takes one norm per *input* channel."""

    def __init__(self, config: CodecConfig, in_channels: int, out_channels: int,
                 kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride)
        if config.norm_type == "weight_norm":
            self.conv = nn.utils.parametrizations.weight_norm(self.conv)
        else:
            self.norm = nn.GroupNorm(1, out_channels)
        overhang = kernel_size - stride
        right = (math.ceil(overhang * config.trim_right_ratio) if config.use_causal_conv
                 else overhang // 2)
        self.trim = (overhang - right, right)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, C_in, L) -> (B, C_out, (L - 1) * stride + kernel)
        if hasattr(self, "norm"):
            x = self.norm(x)
        return x[..., self.trim[0]: x.shape[-1] - self.trim[1]]  # (B, C_out, L * stride)


class ResidualUnit(nn.Module):
    """SEANet's residual unit: ELU, a dilated convolution to ``dim // compress`` channels, ELU, a
    1x1 convolution back, added to the input (through a 1x1 convolution if
    ``use_conv_shortcut``)."""

    def __init__(self, config: CodecConfig, dim: int, dilation: int) -> None:
        super().__init__()
        hidden = dim // config.compress
        self.block = nn.Sequential(
            nn.ELU(), CodecConv1d(config, dim, hidden, config.residual_kernel_size,
                                  dilation=dilation),
            nn.ELU(), CodecConv1d(config, hidden, dim, 1))
        self.shortcut = (CodecConv1d(config, dim, dim, 1) if config.use_conv_shortcut
                         else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class CodecLSTM(nn.Module):
    """An LSTM over the frames, added back to its input: (B, C, T) -> (B, C, T)."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)  # (T, B, C), the LSTM's layout
        return (self.lstm(x)[0] + x).permute(1, 2, 0)


class SEANetEncoder(nn.Module):
    """Waveform (B, 1, L) -> embeddings (B, hidden_size, ceil(L / hop_length))."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        c, dim = config, config.num_filters
        layers: list[nn.Module] = [CodecConv1d(c, 1, dim, c.kernel_size)]
        for ratio in reversed(c.upsampling_ratios):
            layers += [ResidualUnit(c, dim, c.dilation_growth_rate ** j)
                       for j in range(c.num_residual_layers)]
            layers += [nn.ELU(), CodecConv1d(c, dim, 2 * dim, 2 * ratio, stride=ratio)]
            dim *= 2
        layers += [CodecLSTM(dim, c.num_lstm_layers), nn.ELU(),
                   CodecConv1d(c, dim, c.hidden_size, c.last_kernel_size)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SEANetDecoder(nn.Module):
    """Embeddings (B, hidden_size, T) -> waveform (B, 1, T * hop_length)."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        c, dim = config, config.num_filters * 2 ** len(config.upsampling_ratios)
        layers: list[nn.Module] = [CodecConv1d(c, c.hidden_size, dim, c.kernel_size),
                                   CodecLSTM(dim, c.num_lstm_layers)]
        for ratio in c.upsampling_ratios:
            layers += [nn.ELU(), CodecConvTranspose1d(c, dim, dim // 2, 2 * ratio, ratio)]
            dim //= 2
            layers += [ResidualUnit(c, dim, c.dilation_growth_rate ** j)
                       for j in range(c.num_residual_layers)]
        layers += [nn.ELU(), CodecConv1d(c, dim, 1, c.last_kernel_size)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass
class CodecOutput:
    """``audio_values`` (B, 1, samples), the reconstruction trimmed to the input's length;
    ``audio_codes`` (B, n, frames); ``commitment_loss``, a scalar. Built in §41.2."""

    audio_values: torch.Tensor
    audio_codes: torch.Tensor
    commitment_loss: torch.Tensor


class Codec(nn.Module):
    """EnCodec: ``encode`` turns mono audio (B, 1, samples) into codes (B, n, frames) with
    ``frames = ceil(samples / hop_length)``; ``decode`` turns codes back into audio
    (B, 1, frames * hop_length); ``forward`` does both for training. A new Codec's codebooks
    are zeros (every code 0, as in a new ``EncodecModel``) until its first batch in ``train()``
    mode initialises them by k-means. Built in §41.2.

    The convolutions start from N(0, 1/fan_in) weights and zero biases (:meth:`init_weights`),
    not PyTorch's default: that default shrinks the signal about twofold at every strided
    convolution, so a new encoder's output hardly depends on its input (two random inputs
    differed by about 1 % of the output's spread); the codebooks then k-means-initialise on
    near-constant vectors, the commitment loss holds the encoder there, and training never
    recovers (measured: STOI flat at 0.44 over 6000 steps)."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder, self.decoder = SEANetEncoder(config), SEANetDecoder(config)
        self.quantizer = ResidualVectorQuantizer(
            config.num_quantizers, config.codebook_size, config.hidden_size, config.decay,
            config.epsilon, config.kmeans_iters, config.dead_code_threshold,
            config.quantizer_dropout)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Variance-preserving initialisation of every convolution: weights N(0, 1/fan_in)
        (for a transposed convolution, fan_in = in_channels x kernel / stride, the inputs that
        reach one output), biases 0; with weight norm, the direction ``v`` and the norm ``g``
        are set so that ``g * v / ||v||`` is that weight."""
        for module in self.modules():
            if not isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                continue
            transposed = isinstance(module, nn.ConvTranspose1d)
            parametrized = hasattr(module, "parametrizations")
            weight = (module.parametrizations.weight.original1 if parametrized
                      else module.weight)
            kernel = weight.shape[2]
            fan_in = (weight.shape[0] * kernel / module.stride[0] if transposed
                      else weight.shape[1] * kernel)
            fresh = torch.randn_like(weight) / math.sqrt(fan_in)
            weight.copy_(fresh)
            if parametrized:  # weight norm's g: one norm per slice along dim 0
                norm = torch.linalg.vector_norm(fresh, dim=(1, 2), keepdim=True)
                module.parametrizations.weight.original0.copy_(norm)
            module.bias.zero_()

    @staticmethod
    def _check_audio(input_values: torch.Tensor) -> None:
        if input_values.dim() != 3 or input_values.shape[1] != 1:
            raise ValueError(f"expected input_values of shape (B, 1, samples) (mono audio), got "
                             f"{tuple(input_values.shape)}")
        if input_values.numel() == 0:
            raise ValueError(f"input_values is empty: shape {tuple(input_values.shape)}")

    @torch.no_grad()
    def encode(self, input_values: torch.Tensor, num_quantizers: int | None = None
               ) -> torch.Tensor:
        """Audio (B, 1, samples) -> codes (B, n, ceil(samples / hop_length)) from the first
        ``num_quantizers`` codebooks (all by default). The codebooks never change here."""
        self._check_audio(input_values)
        return self.quantizer.encode(self.encoder(input_values), num_quantizers)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, n, frames) -> audio (B, 1, frames * hop_length), not trimmed (as
        ``EncodecModel.decode`` without a padding mask)."""
        return self.decoder(self.quantizer.decode(codes))

    def forward(self, input_values: torch.Tensor, num_quantizers: int | None = None
                ) -> CodecOutput:
        """Encode, quantise and decode (B, 1, samples), for training: in ``train()`` mode the
        codebooks learn (see :class:`Codebook`); the reconstruction is trimmed to ``samples``."""
        self._check_audio(input_values)
        out = self.quantizer(self.encoder(input_values), num_quantizers)
        audio = self.decoder(out.quantized)[..., : input_values.shape[-1]]
        return CodecOutput(audio, out.codes, out.commitment_loss)

    @classmethod
    def from_transformers(cls, model: nn.Module) -> Codec:
        """A Codec with the configuration and weights of ``model``, a
        ``transformers.EncodecModel``, in eval mode, on ``model``'s device. Mono models
        without input normalisation or chunking only (the 24 kHz model; not the 48 kHz one,
        which is stereo, normalises and cuts the audio into overlapping one-second chunks)."""
        hf = getattr(model, "config", None)
        if getattr(hf, "model_type", None) != "encodec" or not hasattr(model, "quantizer"):
            raise TypeError(f"expected a transformers EncodecModel, got {type(model).__name__}")
        if hf.audio_channels != 1:
            raise ValueError(f"only mono codecs are supported, got audio_channels="
                             f"{hf.audio_channels}")
        if hf.normalize:
            raise ValueError("normalize=True is not supported: the codes would need the "
                             "model's per-chunk audio_scales to decode")
        if hf.chunk_length_s is not None:
            raise ValueError(f"chunked encoding is not supported, got chunk_length_s="
                             f"{hf.chunk_length_s} (set it to None to encode whole)")
        if hf.codebook_dim != hf.hidden_size:
            raise ValueError(f"codebook_dim ({hf.codebook_dim}) must equal hidden_size "
                             f"({hf.hidden_size})")
        names = [f.name for f in fields(CodecConfig)]
        names = names[: names.index("num_quantizers") + 1]  # the architecture, not training
        ours = cls(CodecConfig(**{name: getattr(hf, name) for name in names}))
        state = {k.replace(".codebook.", "."): v for k, v in model.state_dict().items()}
        ours.load_state_dict(state)
        parameter = next(model.parameters())
        return ours.to(device=parameter.device, dtype=parameter.dtype).eval()


#: tensors of at least this many numbers are stored in int8 by :func:`save_codec`
INT8_MIN_SIZE = 4096


def save_codec(path, model: Codec, notes: dict) -> None:
    """Write a Codec to a safetensors file, with its configuration and ``notes`` (recipe,
    scores, command) in the metadata. Large tensors (at least :data:`INT8_MIN_SIZE` numbers:
    the convolutions and LSTMs) are stored in **int8** with one float16 scale per row (the
    row's largest magnitude / 127, row = first dimension), the rest in float16: the shipped
    codec's 4 M numbers take 4 MB instead of 8. Scores computed from the loaded file are those
    of the stored weights. Built in §41.2."""
    import json
    from dataclasses import asdict

    from safetensors.torch import save_file

    state, int8 = {}, []
    for name, value in model.state_dict().items():
        value = value.detach().cpu().float()
        if value.is_floating_point() and value.numel() >= INT8_MIN_SIZE:
            rows = value.reshape(value.shape[0], -1)
            scale = (rows.abs().amax(1) / 127).clamp_min(1e-12).to(torch.float16)
            state[name] = (rows / scale.float()[:, None]).round().clamp(-127, 127) \
                .to(torch.int8).reshape(value.shape)
            state[name + ".int8_scale"] = scale
            int8.append(name)
        else:
            state[name] = value.to(torch.float16).clone()
    metadata = {"config": json.dumps(asdict(model.config)), "notes": json.dumps(notes),
                "int8": json.dumps(int8), "format": "mmcourse.Codec"}
    save_file(state, str(path), metadata=metadata)


def load_codec(path) -> tuple[Codec, dict]:
    """The Codec and notes saved by :func:`save_codec`, in float32 and eval mode, on the CPU.
    Built in §41.2."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != "mmcourse.Codec":
        raise ValueError(f"{path} was not written by save_codec")
    model = Codec(CodecConfig(**json.loads(metadata["config"])))
    tensors = load_file(str(path))
    state = {}
    for name in json.loads(metadata.get("int8", "[]")):
        q, scale = tensors.pop(name), tensors.pop(name + ".int8_scale")
        state[name] = (q.float().reshape(q.shape[0], -1) * scale.float()[:, None]).reshape(
            q.shape)
    state.update({k: v.float() for k, v in tensors.items()})
    model.load_state_dict(state)
    return model.eval(), json.loads(metadata["notes"])
