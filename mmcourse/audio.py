"""The audio front end: waveform -> STFT -> power spectrogram -> mel -> log-mel (dB) -> MFCC.

Written from scratch in PyTorch (framing, a periodic Hann window, ``torch.fft.rfft``, a triangular
mel filterbank, a DCT-II matrix) with librosa's conventions, so that each step gives librosa's
numbers: ``stft`` is ``librosa.stft``, ``mel_filterbank`` is ``librosa.filters.mel``,
``power_to_db`` is ``librosa.power_to_db`` and ``mfcc`` is ``librosa.feature.mfcc`` (the tests
check each one). Every function takes a NumPy array or a tensor with any leading batch dimensions
and returns a tensor.

Built in §39.2; the Whisper-style recogniser of §41.1 starts from ``log_mel_spectrogram``.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _as_tensor(x, name: str) -> torch.Tensor:
    """``x`` as a floating-point tensor (NumPy arrays and lists are converted)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if not t.is_floating_point() and not t.is_complex():
        t = t.float()
    if t.dim() == 0:
        raise ValueError(f"expected {name} with at least one dimension, got a scalar")
    return t


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def num_frames(num_samples: int, n_fft: int = 400, hop_length: int = 160,
               center: bool = True) -> int:
    """How many STFT frames ``stft`` makes from ``num_samples`` samples.

    With ``center`` the signal is padded by ``n_fft // 2`` on both sides, so frame ``t`` is
    centred on sample ``t * hop_length`` and there are ``1 + num_samples // hop_length`` frames;
    without it, ``1 + (num_samples - n_fft) // hop_length``. Built in §39.2.
    """
    _check_positive(n_fft=n_fft, hop_length=hop_length)
    if center:
        return 1 + num_samples // hop_length
    if num_samples < n_fft:
        raise ValueError(f"without center, need at least n_fft={n_fft} samples, got {num_samples}")
    return 1 + (num_samples - n_fft) // hop_length


def hann_window(length: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The periodic Hann window ``0.5 - 0.5 cos(2 pi n / length)``, n = 0 .. length-1 (as
    ``scipy.signal.get_window("hann", length)`` and ``torch.hann_window`` give). Built in §39.2."""
    _check_positive(length=length)
    n = torch.arange(length, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(2 * math.pi * n / length)).to(dtype)


def frame(waveform, frame_length: int, hop_length: int) -> torch.Tensor:
    """Cut (..., samples) into overlapping frames: (..., num_frames, frame_length), frame ``t``
    starting at sample ``t * hop_length``; a view, no copy. Built in §39.2."""
    x = _as_tensor(waveform, "waveform")
    _check_positive(frame_length=frame_length, hop_length=hop_length)
    if x.shape[-1] < frame_length:
        raise ValueError(f"need at least frame_length={frame_length} samples, got {x.shape[-1]}")
    return x.unfold(-1, frame_length, hop_length)  # (..., N) -> (..., frames, frame_length)


def stft(waveform, n_fft: int = 400, hop_length: int = 160, win_length: int | None = None,
         center: bool = True, pad_mode: str = "constant") -> torch.Tensor:
    """The short-time Fourier transform, as ``librosa.stft`` computes it.

    (..., samples) -> complex (..., n_fft // 2 + 1, frames): pad by ``n_fft // 2`` on both sides
    if ``center`` (zeros for ``pad_mode="constant"``, or ``"reflect"``), cut frames of ``n_fft``
    samples every ``hop_length``, multiply by a periodic Hann window of ``win_length`` (default
    ``n_fft``, zero-padded to ``n_fft`` in the middle), and take the real FFT of each frame.
    Built in §39.2.
    """
    x = _as_tensor(waveform, "waveform")
    win_length = n_fft if win_length is None else win_length
    _check_positive(n_fft=n_fft, hop_length=hop_length, win_length=win_length)
    if win_length > n_fft:
        raise ValueError(f"win_length must be at most n_fft={n_fft}, got {win_length}")
    if center:
        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
        shape = x.shape
        x = torch.nn.functional.pad(x.reshape(-1, 1, shape[-1]), (n_fft // 2, n_fft // 2),
                                    mode=pad_mode)
        x = x.reshape(*shape[:-1], -1)  # (..., N) -> (..., N + 2 * (n_fft // 2))
    left = (n_fft - win_length) // 2
    window = x.new_zeros(n_fft)  # on the waveform's device
    window[left:left + win_length] = hann_window(win_length, x.dtype).to(x.device)
    frames = frame(x, n_fft, hop_length) * window  # (..., frames, n_fft)
    return torch.fft.rfft(frames, dim=-1).transpose(-1, -2)  # -> (..., n_fft // 2 + 1, frames)


def hz_to_mel(frequencies, htk: bool = False) -> torch.Tensor:
    """Hertz -> mels, as a float64 tensor. Slaney's scale (the default, as librosa and Whisper
    use) is linear below 1 kHz, ``f / (200 / 3)``, and logarithmic above it (27 mels per factor
    6.4); ``htk=True`` gives ``2595 log10(1 + f / 700)``. Built in §39.2."""
    f = torch.as_tensor(np.asarray(frequencies, dtype=np.float64))
    if htk:
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = math.log(6.4) / 27.0
    linear = f / f_sp
    log = min_log_hz / f_sp + torch.log(torch.clamp(f, min=min_log_hz) / min_log_hz) / logstep
    return torch.where(f >= min_log_hz, log, linear)


def mel_to_hz(mels, htk: bool = False) -> torch.Tensor:
    """Mels -> Hertz, the inverse of :func:`hz_to_mel`. Built in §39.2."""
    m = torch.as_tensor(np.asarray(mels, dtype=np.float64))
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    log = min_log_hz * torch.exp(logstep * (m - min_log_mel))
    return torch.where(m >= min_log_mel, log, f_sp * m)


def mel_filterbank(sample_rate: int = 16_000, n_fft: int = 400, n_mels: int = 80, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False, norm: str | None = "slaney",
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Triangular mel filters, (n_mels, n_fft // 2 + 1), as ``librosa.filters.mel`` makes them.

    ``n_mels + 2`` edge frequencies are equally spaced on the mel scale between ``fmin`` and
    ``fmax`` (default ``sample_rate / 2``); filter ``m`` rises linearly from edge ``m`` to a peak
    of 1 at edge ``m + 1`` and falls to 0 at edge ``m + 2``, evaluated at the FFT bins'
    frequencies. ``norm="slaney"`` divides each filter by its width in Hz / 2, so that every
    filter has the same area. Built in §39.2.
    """
    _check_positive(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels)
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2 = {sample_rate / 2}, "
                         f"got fmin={fmin}, fmax={fmax}")
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # bin freqs
    mels = torch.linspace(float(hz_to_mel(fmin, htk)), float(hz_to_mel(fmax, htk)), n_mels + 2,
                          dtype=torch.float64)
    edges = mel_to_hz(mels, htk)  # (n_mels + 2,) in Hz
    widths = edges.diff()  # (n_mels + 1,)
    ramps = edges[:, None] - bins[None, :]  # (n_mels + 2, bins): edge minus bin frequency
    rising = -ramps[:-2] / widths[:-1, None]  # (n_mels, bins): 0 at the lower edge, 1 at the centre
    falling = ramps[2:] / widths[1:, None]  # 1 at the centre, 0 at the upper edge
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if norm == "slaney":
        weights = weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.to(dtype)


def power_spectrogram(waveform, n_fft: int = 400, hop_length: int = 160, power: float = 2.0,
                      center: bool = True, pad_mode: str = "constant") -> torch.Tensor:
    """``|stft| ** power``: (..., samples) -> (..., n_fft // 2 + 1, frames). Built in §39.2."""
    return stft(waveform, n_fft, hop_length, center=center, pad_mode=pad_mode).abs() ** power


def mel_spectrogram(waveform, sample_rate: int = 16_000, n_fft: int = 400, hop_length: int = 160,
                    n_mels: int = 80, fmin: float = 0.0, fmax: float | None = None,
                    power: float = 2.0, center: bool = True,
                    pad_mode: str = "constant") -> torch.Tensor:
    """The mel spectrogram, mel filterbank @ power spectrogram: (..., samples) ->
    (..., n_mels, frames), as ``librosa.feature.melspectrogram``. Built in §39.2."""
    spec = power_spectrogram(waveform, n_fft, hop_length, power, center, pad_mode)
    filters = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, dtype=spec.dtype)
    filters = filters.to(spec.device)
    return filters @ spec  # (n_mels, bins) @ (..., bins, frames) -> (..., n_mels, frames)


def power_to_db(spectrogram, ref: float = 1.0, amin: float = 1e-10,
                top_db: float | None = 80.0) -> torch.Tensor:
    """Decibels ``10 log10(max(S, amin) / ref)``, floored at ``top_db`` below the maximum (per
    item of the leading dimensions; for a single spectrogram, as ``librosa.power_to_db``).
    Built in §39.2."""
    s = _as_tensor(spectrogram, "spectrogram")
    if amin <= 0 or ref <= 0:
        raise ValueError(f"amin and ref must be positive, got amin={amin}, ref={ref}")
    db = 10.0 * torch.log10(torch.clamp(s, min=amin)) - 10.0 * math.log10(max(amin, ref))
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db must be non-negative or None, got {top_db}")
        peak = db.amax(dim=(-2, -1), keepdim=True) if db.dim() >= 2 else db.max()
        db = torch.maximum(db, peak - top_db)
    return db


def log_mel_spectrogram(waveform, sample_rate: int = 16_000, n_fft: int = 400,
                        hop_length: int = 160, n_mels: int = 80, top_db: float | None = 80.0,
                        **kwargs) -> torch.Tensor:
    """Log-mel features in dB: (..., samples) -> (..., n_mels, frames); ``kwargs`` go to
    :func:`mel_spectrogram`. Built in §39.2; §41.1 feeds them to a Whisper-style encoder."""
    mel = mel_spectrogram(waveform, sample_rate, n_fft, hop_length, n_mels, **kwargs)
    return power_to_db(mel, top_db=top_db)


def dct_matrix(n_out: int, n_in: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II as a (n_out, n_in) matrix: row k is
    ``sqrt(2/n_in) cos(pi k (2n + 1) / (2 n_in))``, row 0 scaled by ``1/sqrt(2)``
    (``scipy.fft.dct(type=2, norm="ortho")``). Built in §39.2."""
    _check_positive(n_out=n_out, n_in=n_in)
    if n_out > n_in:
        raise ValueError(f"n_out must be at most n_in={n_in}, got {n_out}")
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    n = torch.arange(n_in, dtype=torch.float64)[None, :]
    basis = math.sqrt(2.0 / n_in) * torch.cos(math.pi * k * (2 * n + 1) / (2 * n_in))
    basis[0] /= math.sqrt(2.0)
    return basis.to(dtype)


def mfcc(log_mel, n_mfcc: int = 13) -> torch.Tensor:
    """Mel-frequency cepstral coefficients from log-mel features (dB): (..., n_mels, frames) ->
    (..., n_mfcc, frames), the first ``n_mfcc`` coefficients of a DCT-II over the mel axis (as
    ``librosa.feature.mfcc(S=log_mel)``). Built in §39.2."""
    s = _as_tensor(log_mel, "log_mel")
    if s.dim() < 2:
        raise ValueError(f"expected log-mel features of shape (..., n_mels, frames), "
                         f"got {tuple(s.shape)}")
    basis = dct_matrix(n_mfcc, s.shape[-2], s.dtype).to(s.device)
    return basis @ s  # (n_mfcc, n_mels) @ (..., n_mels, T)


#: Whisper's front end: 16 kHz audio cut or zero-padded to 30 s, 10 ms hops, 25 ms windows
WHISPER_SAMPLE_RATE, WHISPER_SECONDS, WHISPER_HOP = 16_000, 30, 160


def whisper_log_mel(waveform, n_mels: int = 80, num_samples: int | None = 480_000,
                    sample_rate: int = WHISPER_SAMPLE_RATE) -> torch.Tensor:
    """The log-mel features Whisper reads, as ``transformers.WhisperFeatureExtractor`` computes
    them: (..., samples) at 16 kHz -> (..., n_mels, num_samples // 160).

    The waveform is zero-padded (or cut) to ``num_samples`` (30 s; ``None`` keeps its length),
    then: a 400-point STFT every 160 samples with a periodic Hann window and reflect padding at
    the ends, the power spectrum, Slaney mel filters up to 8 kHz, the last frame dropped,
    ``log10`` of the power clamped at 1e-10, floored at 8 below each item's maximum, and scaled
    by ``(x + 4) / 4``. ``sample_rate`` must be 16 000 (a ``ValueError`` otherwise). Unlike :func:`log_mel_spectrogram` (librosa's dB), the scale is
    log10 (one tenth of dB), the floor is 8 decades rather than 80 dB, and the result is roughly
    centred on 0. Computed in float64, returned in float32. Built in §41.1.
    """
    if sample_rate != WHISPER_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be {WHISPER_SAMPLE_RATE} Hz, the rate Whisper's "
                         f"filters are made for; resample the audio first (got {sample_rate!r})")
    x = _as_tensor(waveform, "waveform").to(torch.float64)
    if x.shape[-1] == 0:
        raise ValueError("waveform is empty: Whisper needs at least one sample of audio")
    if num_samples is not None:
        _check_positive(num_samples=num_samples)
        if x.shape[-1] >= num_samples:
            x = x[..., :num_samples]
        else:
            x = torch.nn.functional.pad(x, (0, num_samples - x.shape[-1]))
    spec = power_spectrogram(x, n_fft=400, hop_length=WHISPER_HOP, pad_mode="reflect")[..., :-1]
    filters = mel_filterbank(WHISPER_SAMPLE_RATE, 400, n_mels, dtype=torch.float64)
    log = torch.log10(torch.clamp(filters.to(spec.device) @ spec, min=1e-10))  # (..., M, T)
    log = torch.maximum(log, log.amax(dim=(-2, -1), keepdim=True) - 8.0)
    return ((log + 4.0) / 4.0).to(torch.float32)


def mel_distance(reference, decoded, sample_rate: int = 16_000, n_mels: int = 80,
                 top_db: float = 80.0) -> float:
    """How far a decoded sound is from its reference, as a codec paper reports it: the mean
    absolute difference of their log-mel spectrograms in dB (25 ms windows, 10 ms hops at 16
    kHz). Both are floored at ``top_db`` below the reference's loudest mel bin, as
    ``power_to_db`` does, so that a codec's faint hiss in the reference's digital silence counts
    as a difference of at most ``top_db``, not of hundreds of dB. 0 for identical sounds.
    ``decoded`` is cut to the reference's length (a codec decodes whole frames). Built in §41.2.
    """
    ref, dec = _as_tensor(reference, "reference"), _as_tensor(decoded, "decoded")
    if ref.dim() != 1 or dec.dim() != 1 or ref.numel() == 0:
        raise ValueError(f"expected two non-empty 1-D waveforms, got shapes {tuple(ref.shape)} "
                         f"and {tuple(dec.shape)}")
    if dec.numel() < ref.numel():
        raise ValueError(f"decoded ({dec.numel()} samples) is shorter than the reference "
                         f"({ref.numel()})")
    if not top_db > 0:
        raise ValueError(f"top_db must be positive, got {top_db}")
    n_fft, hop = sample_rate // 40, sample_rate // 100
    mels = [mel_spectrogram(x, sample_rate, n_fft, hop, n_mels) for x in (ref, dec[: ref.numel()])]
    dbs = [10 * torch.log10(m.clamp_min(1e-20)) for m in mels]
    floor = float(dbs[0].max()) - top_db
    return float((dbs[0].clamp_min(floor) - dbs[1].clamp_min(floor)).abs().mean())
