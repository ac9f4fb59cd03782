"""Training objectives shared by several models of the book.

``contrastive_loss`` is the symmetric InfoNCE loss of CLIP and ALIGN. Built in §39.3 for a small
dual encoder; §40.1 trains CLIP with it. ``multiscale_spectral_loss`` compares two waveforms by
their spectrograms at several resolutions, the reconstruction loss of neural audio codecs (§41.2);
``multiscale_mel_loss`` does it on mel spectrograms, as EnCodec trains.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def contrastive_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """The symmetric InfoNCE loss of a batch of matching pairs (Oord et al. 2018; CLIP, Radford et
    al. 2021).

    Row ``i`` of ``image_emb`` (B, D) and row ``i`` of ``text_emb`` (B, D) are a positive pair;
    every other row of the batch is a negative. With ``logits = logit_scale * image_emb @
    text_emb.T`` (B, B), the loss is the mean of the cross-entropy of picking the right text for
    each image (rows) and the right image for each text (columns)::

        (CE(logits, arange(B)) + CE(logits.T, arange(B))) / 2

    Args:
        image_emb, text_emb: (B, D) embeddings. CLIP passes L2-normalised ones, so that the logits
            are scaled cosine similarities; the function does not normalise them itself.
        logit_scale: the multiplier ``1 / temperature`` (a float or a scalar tensor), i.e. the
            *exponentiated* learnable parameter: CLIP stores ``log(1 / 0.07)`` and passes its
            ``exp()``.

    Returns:
        The scalar loss; ``log(B)`` when all logits are equal. It equals the ``loss`` of
        ``transformers.CLIPModel(..., return_loss=True)`` given that model's embeddings and scale.
    Built in §39.3.
    """
    if image_emb.dim() != 2 or text_emb.dim() != 2:
        raise ValueError(
            f"expected image_emb and text_emb of shape (B, D), got {tuple(image_emb.shape)} and "
            f"{tuple(text_emb.shape)}"
        )
    if image_emb.shape != text_emb.shape:
        raise ValueError(
            f"expected one text per image (equal shapes), got image_emb {tuple(image_emb.shape)} "
            f"and text_emb {tuple(text_emb.shape)}"
        )
    scale_shape = tuple(torch.as_tensor(logit_scale).shape)
    if torch.Size(scale_shape).numel() != 1:
        raise ValueError(f"expected a scalar logit_scale, got shape {scale_shape}")
    logits = logit_scale * image_emb @ text_emb.T  # (B, D) @ (D, B) -> (B, B): images x texts
    targets = torch.arange(len(logits), device=logits.device)  # the positives are on the diagonal
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _check_waveforms(x: torch.Tensor, y: torch.Tensor, windows: tuple[int, ...],
                     shortest: int) -> None:
    """The checks the spectral losses share: x and y alike, windows integers >= shortest."""
    if x.shape != y.shape or x.dim() == 0 or x.shape[-1] == 0:
        raise ValueError(f"expected x and y of the same shape (..., samples) with samples >= 1, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    if not windows or any(isinstance(w, bool) or not isinstance(w, int) or w < shortest
                          for w in windows):
        raise ValueError(f"windows must be integers >= {shortest} (at least one), got "
                         f"{windows!r}")


def multiscale_spectral_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    windows: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048),
    eps: float = 1e-5,
) -> torch.Tensor:
    """A reconstruction loss that compares spectrograms at several time-frequency resolutions
    (SoundStream, Zeghidour et al. 2021; EnCodec, Défossez et al. 2022).

    For each window length ``w`` in ``windows``, ``S_w`` is the magnitude of the STFT with a
    periodic Hann window of ``w`` samples, hop ``w // 4`` and the signal zero-padded by ``w // 2``
    at both ends (``torch.stft(center=True, pad_mode="constant")``). The loss is the mean over the
    windows of::

        mean |S_w(x) - S_w(y)|  +  mean (log max(S_w(x), eps) - log max(S_w(y), eps)) ** 2

    an L1 distance of linear magnitudes, which the loud parts dominate, plus a squared distance of
    log magnitudes, which weighs quiet bands and silences as much. (EnCodec uses L1 + L2 of 64-band
    log-mel spectrograms for windows 2**5 .. 2**11; SoundStream an L1 of mel magnitudes plus a
    window-weighted L2 of log mels; this version skips the mel filterbank so that it needs no
    sampling rate.) Short windows see timing, long ones pitch: a decoder trained on one window
    alone makes artefacts at the scales it does not see.

    Args:
        x, y: waveforms of the same shape (..., samples), e.g. (B, 1, samples).
        windows: STFT window lengths, each at least 4.
        eps: the floor of the magnitudes before the logarithm.

    Returns:
        A scalar, 0 when ``x`` equals ``y``.
    Built in §41.2.
    """
    _check_waveforms(x, y, windows, shortest=4)
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])  # (N, samples)
    total = x.new_zeros(())
    for w in windows:
        window = torch.hann_window(w, device=x.device, dtype=x.dtype)
        mags = [torch.stft(s, w, hop_length=w // 4, window=window, center=True,
                           pad_mode="constant", return_complex=True).abs()
                for s in (x, y)]  # (N, w // 2 + 1, frames) each
        linear = (mags[0] - mags[1]).abs().mean()
        logs = (mags[0].clamp_min(eps).log() - mags[1].clamp_min(eps).log()).pow(2).mean()
        total = total + linear + logs
    return total / len(windows)


@functools.lru_cache(maxsize=32)
def _mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    from mmcourse.audio import mel_filterbank

    return mel_filterbank(sample_rate, n_fft, n_mels)


def multiscale_mel_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    sample_rate: int,
    windows: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048),
    n_mels: int = 64,
    eps: float = 1e-4,
) -> torch.Tensor:
    """:func:`multiscale_spectral_loss` on mel spectrograms, as EnCodec (Défossez et al. 2022)
    trains: for each window ``w``, ``M_w`` is a mel filterbank (``min(n_mels, w // 4)`` bands,
    so that short windows have no empty band) applied to the STFT magnitude, and the loss is the
    mean over the windows of::

        mean |M_w(x) - M_w(y)|  +  mean |log max(M_w(x), eps) - log max(M_w(y), eps)|

    The mel scale gives the bands below 4 kHz, where speech's formants are, most of the weight;
    a linear spectrogram spends half of it on 4-8 kHz. On the book's speech a codec trained with
    this loss reached a higher STOI in 1500 steps (0.71) than with the linear loss in 2500 (0.67).

    Args:
        x, y: waveforms of the same shape (..., samples).
        sample_rate: their sampling rate in Hz (places the mel bands).
        windows: STFT window lengths, each at least 8; hop ``w // 4``.
        n_mels: the most mel bands at any window.
        eps: the floor of the mel magnitudes before the logarithm.

    Returns:
        A scalar, 0 when ``x`` equals ``y``.
    Built in §41.2.
    """
    _check_waveforms(x, y, windows, shortest=8)
    if sample_rate <= 0 or n_mels <= 0 or not eps > 0:
        raise ValueError(f"need sample_rate, n_mels and eps > 0, got {sample_rate}, {n_mels}, "
                         f"{eps}")
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])  # (N, samples)
    total = x.new_zeros(())
    for w in windows:
        window = torch.hann_window(w, device=x.device, dtype=x.dtype)
        filters = _mel_filters(sample_rate, w, min(n_mels, w // 4)).to(x.device, x.dtype)
        mels = [filters @ torch.stft(s, w, hop_length=w // 4, window=window, center=True,
                                     pad_mode="constant", return_complex=True).abs()
                for s in (x, y)]  # (N, bands, frames) each
        linear = (mels[0] - mels[1]).abs().mean()
        logs = (mels[0].clamp_min(eps).log() - mels[1].clamp_min(eps).log()).abs().mean()
        total = total + linear + logs
    return total / len(windows)
