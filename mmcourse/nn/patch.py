"""Images as sequences of patches: ``patchify`` and the convolutional ``PatchEmbedding``.

Built in §39.1, where the notebook shows that the convolution is ``patchify`` followed by a Linear layer.
"""
from __future__ import annotations

import torch
from torch import nn


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images (B, C, H, W) into non-overlapping ``patch_size`` x ``patch_size`` patches.

    Returns (B, N, C * p * p) with N = (H / p) * (W / p): patches in row-major order (left to right, then
    top to bottom), each flattened channel first, as ``Conv2d.weight.reshape(out_channels, -1)`` is.
    Built in §39.1.
    """
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    batch, channels, height, width = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image height and width must be divisible by patch_size={patch_size}, got {height}x{width}"
        )
    rows, cols = height // patch_size, width // patch_size
    x = images.reshape(batch, channels, rows, patch_size, cols, patch_size)  # (B, C, rows, p, cols, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # -> (B, rows, cols, C, p, p)
    return x.reshape(batch, rows * cols, channels * patch_size * patch_size)  # -> (B, N, C*p*p)


class PatchEmbedding(nn.Module):
    """Embed each ``patch_size`` x ``patch_size`` patch as a ``dim``-vector with one strided convolution
    (kernel = stride = patch_size), the ViT's first layer.

    (B, C, H, W) -> (B, N, dim), patches in row-major order. ``bias=False`` gives CLIP's variant.
    Built in §39.1.
    """

    def __init__(self, patch_size: int, num_channels: int, dim: int, bias: bool = True) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(num_channels, dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != self.proj.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.proj.in_channels}, H, W), got {tuple(images.shape)}"
            )
        height, width = images.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"image height and width must be divisible by patch_size={self.patch_size}, got {height}x{width}"
            )
        x = self.proj(images)  # (B, C, H, W) -> (B, D, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # -> (B, D, N) -> (B, N, D)
