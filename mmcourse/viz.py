"""Figures the book draws again and again: image grids, attention overlays, spectrograms, curves.

Every function returns the matplotlib ``Figure`` (or draws into a given ``ax``) so that notebooks
can adjust it. Built in §39.1.
"""
from __future__ import annotations

import textwrap
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np


#: font sizes for figures that the book shows at most ~730 px wide: a figure of at most 9.5 inches
#: (100 dpi) is shrunk by at most a quarter, so 10-11 pt stays legible.
BOOK_STYLE: dict[str, object] = {
    "font.size": 11, "axes.titlesize": 11, "axes.labelsize": 11, "legend.fontsize": 10,
    "xtick.labelsize": 10, "ytick.labelsize": 10, "figure.titlesize": 12, "figure.dpi": 100,
    "axes.spines.top": False, "axes.spines.right": False,
}
#: the widest figure (inches) that stays legible at the book's column width
MAX_WIDTH = 9.5


def book_style() -> None:
    """Apply :data:`BOOK_STYLE` to matplotlib; :func:`mmcourse.utils.setup` calls it. Built in §39.1."""
    plt.rcParams.update(BOOK_STYLE)


def _as_hwc(image) -> np.ndarray:
    """Any image (H, W, 3) uint8/float or (3, H, W) tensor -> (H, W, 3) array for imshow."""
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected an image of shape (H, W, 3) or (3, H, W), got {arr.shape}")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return arr


def show_images(images: Sequence, captions: Sequence[str] | None = None, ncols: int = 6,
                size: float = 2.0, wrap: int | None = None, fontsize: int = 9):
    """A grid of images with an optional caption under each, at most :data:`MAX_WIDTH` inches wide
    (each image ``size`` inches or less); captions wrap at ``wrap`` characters (default: what fits
    under one image)."""
    images = list(images)
    if not images:
        raise ValueError("show_images needs at least one image")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"got {len(images)} images but {len(captions)} captions")
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    size = min(size, MAX_WIDTH / ncols)
    wrap = wrap or max(12, int(size * 72 / (0.55 * fontsize)))  # average glyph: 0.55 em
    extra = 0.0 if captions is None else 0.16 * max(len(textwrap.wrap(c, wrap)) for c in captions)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + extra * size / 2) * nrows),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(_as_hwc(images[k]), interpolation="nearest")
            if captions is not None:
                ax.set_title("\n".join(textwrap.wrap(captions[k], wrap)), fontsize=fontsize)
    fig.tight_layout()
    return fig


def attention_overlay(image, attention, ax=None, title: str | None = None, alpha: float = 0.55,
                      cmap: str = "inferno"):
    """Draw ``attention`` (a (h, w) grid of weights, e.g. one query's attention over patches)
    upsampled over ``image``. Returns the axes."""
    img = _as_hwc(image)
    att = np.asarray(attention.detach().cpu() if hasattr(attention, "detach") else attention, dtype=float)
    if att.ndim != 2:
        raise ValueError(f"expected attention of shape (h, w), got {att.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(2.5, 2.5))
    H, W = img.shape[:2]
    ax.imshow(img, interpolation="nearest")
    ax.imshow(att, cmap=cmap, alpha=alpha, extent=(-0.5, W - 0.5, H - 0.5, -0.5), interpolation="bilinear")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def spectrogram(values, sample_rate: int, hop_length: int, ax=None, title: str | None = None,
                ylabel: str = "frequency bin", colorbar_label: str = "dB"):
    """Draw a (freq, frames) spectrogram with time in seconds on the x axis. Returns the axes."""
    arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"expected a spectrogram of shape (freq, frames), got {arr.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.6))
    seconds = arr.shape[1] * hop_length / sample_rate
    im = ax.imshow(arr, origin="lower", aspect="auto", extent=(0, seconds, 0, arr.shape[0]), cmap="magma")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, label=colorbar_label, pad=0.01)
    return ax


def plot_history(history, metrics: Sequence[str] = (), title: str | None = None, window: int = 20):
    """Training loss (raw and smoothed) and, on a second panel, evaluation metrics over steps."""
    ncols = 1 + bool(metrics)
    fig, axes = plt.subplots(1, ncols, figsize=(min(MAX_WIDTH, 5.5 * ncols), 3.2), squeeze=False)
    ax = axes[0, 0]
    ax.plot(history.loss, color="0.75", lw=0.8, label="loss")
    ax.plot(history.smoothed(window), color="C0", lw=1.8, label=f"mean of last {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(frameon=False)
    if metrics:
        ax2 = axes[0, 1]
        for m in metrics:
            steps, values = history.eval_curve(m)
            ax2.plot(steps, values, marker="o", label=m)
        ax2.set_xlabel("step")
        ax2.set_ylabel("held-out metric")
        ax2.legend(frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def listen(sounds: dict[str, np.ndarray], sample_rate: int = 16_000, texts: dict | None = None,
           width: float = 4.2, height: float = 1.3):
    """Players for ``sounds`` ({label: mono waveform}), each beside its log-mel spectrogram and
    under its label (and ``texts[label]``, e.g. a transcript), as one self-contained HTML block
    (the audio and the picture are embedded, so the built book plays them with no server).
    Built in §41.1; used wherever the book makes or transforms sound."""
    import base64
    import html
    import io

    from IPython.display import HTML, Audio

    from mmcourse.audio import log_mel_spectrogram

    if not sounds:
        raise ValueError("sounds must hold at least one {label: waveform}")
    rows = []
    for label, wave in sounds.items():
        wave = np.asarray(wave.detach().cpu() if hasattr(wave, "detach") else wave, dtype=float)
        if wave.ndim != 1 or wave.size == 0:
            raise ValueError(f"sound {label!r} must be a non-empty 1-D waveform; got {wave.shape}")
        fig, ax = plt.subplots(figsize=(width, height))
        mel = log_mel_spectrogram(wave.astype(np.float32), sample_rate, n_mels=64)
        ax.imshow(np.asarray(mel), origin="lower", aspect="auto", cmap="magma",
                  extent=(0, wave.size / sample_rate, 0, mel.shape[0]))
        ax.set_xlabel("time (s)", fontsize=8)
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        picture = base64.b64encode(buffer.getvalue()).decode()
        player = Audio(wave, rate=sample_rate, normalize=True)._repr_html_()
        note = html.escape(str(texts[label])) if texts and label in texts else ""
        rows.append(f"<tr><td style='text-align:left;vertical-align:middle'><b>"
                    f"{html.escape(label)}</b><br>{player}<br><i>{note}</i></td>"
                    f"<td><img src='data:image/png;base64,{picture}'></td></tr>")
    return HTML("<table>" + "".join(rows) + "</table>")
