"""A small image-text dual encoder: two towers, two linear projections, one embedding space.

The image tower is a small CNN or the book's ViT; the text tower is a small transformer over token
ids. Each tower's pooled output is projected linearly and L2-normalised, and a learnable
temperature scales the cosine similarities, as in CLIP (Radford et al. 2021) and ALIGN (Jia et al.
2021). Trained with :func:`mmcourse.losses.contrastive_loss`. Built in §39.3 to measure the
modality gap; §40.1 builds the full CLIP.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.models.vit import ViT, ViTConfig
from mmcourse.nn import EncoderBlock

IMAGE_TOWERS: tuple[str, ...] = ("cnn", "vit")


@dataclass
class DualEncoderConfig:
    """The dual encoder's hyper-parameters. Built in §39.3.

    - ``vocab_size``, ``max_length``, ``pad_id``: the text tower's token ids (``pad_id`` marks
      padding).
    - ``image_tower``: ``"cnn"`` (``image_layers`` stride-2 3x3 convolutions, max-pooled) or
      ``"vit"`` (a :class:`~mmcourse.models.ViT` of ``image_layers`` blocks and ``patch_size``
      patches, [CLS]-pooled), for square RGB images of side ``image_size``.
    - ``width``: the hidden size of both towers; ``text_layers`` encoder blocks of ``num_heads``
      heads and an MLP of ``mlp_dim`` in the text tower (and the ViT).
    - ``embed_dim``: the width of the shared embedding space.
    - ``temperature``: the initial temperature (CLIP: 0.07); ``learn_temperature`` makes it
      trainable.
    """

    vocab_size: int
    max_length: int = 32
    pad_id: int = 0
    image_size: int = 32
    image_tower: str = "cnn"
    image_layers: int = 3
    patch_size: int = 8
    width: int = 64
    text_layers: int = 2
    num_heads: int = 4
    mlp_dim: int = 128
    embed_dim: int = 32
    temperature: float = 0.07
    learn_temperature: bool = True

    def __post_init__(self) -> None:
        if self.image_tower not in IMAGE_TOWERS:
            raise ValueError(
                f"unknown image_tower {self.image_tower!r}, expected one of {IMAGE_TOWERS}"
            )
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(
                f"pad_id must be a token id in [0, {self.vocab_size}), got {self.pad_id}"
            )
        if self.width % self.num_heads != 0:
            raise ValueError(
                "width must be divisible by num_heads, got "
                f"width={self.width} and num_heads={self.num_heads}"
            )
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


class ConvTower(nn.Module):
    """``layers`` stride-2 3x3 convolutions with ReLU, then the maximum over positions (which keeps
    a small object's features however little of the image it covers): (B, 3, H, W) -> (B, width).
    Built in §39.3."""

    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        for k in range(layers):
            convs += [nn.Conv2d(3 if k == 0 else width, width, 3, stride=2, padding=1), nn.ReLU()]
        self.convs = nn.Sequential(*convs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # (B, 3, H, W) -> (B, width, h, w) -> (B, width)
        return self.convs(images).amax(dim=(2, 3))


class TextTower(nn.Module):
    """Token and position embeddings, pre-norm encoder blocks that ignore padding, a final
    LayerNorm and the mean over the non-padding tokens: ids (B, N) -> (B, width). Built in §39.3."""

    def __init__(self, config: DualEncoderConfig) -> None:
        super().__init__()
        self.pad_id = config.pad_id
        self.token_embed = nn.Embedding(config.vocab_size, config.width)
        self.pos_embed = nn.Parameter(torch.randn(1, config.max_length, config.width) * 0.02)
        self.blocks = nn.ModuleList(
            EncoderBlock(config.width, config.num_heads, config.mlp_dim)
            for _ in range(config.text_layers)
        )
        self.norm = nn.LayerNorm(config.width)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        max_length = self.pos_embed.shape[1]
        if input_ids.dim() != 2 or input_ids.shape[1] > max_length:
            raise ValueError(
                f"expected input_ids of shape (B, N) with N <= {max_length}, "
                f"got {tuple(input_ids.shape)}"
            )
        keep = input_ids != self.pad_id  # (B, N)
        # (B, N) -> (B, N, D)
        x = self.token_embed(input_ids) + self.pos_embed[:, : input_ids.shape[1]]
        for block in self.blocks:
            x, _ = block(x, attention_mask=keep[:, None, None, :])  # padding keys are masked
        x = self.norm(x)
        weights = keep.unsqueeze(-1).float()  # (B, N, 1)
        return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (B, N, D) -> (B, D)


class DualEncoder(nn.Module):
    """Two towers mapping images and texts to L2-normalised vectors of one space. Built in §39.3.

    ``forward(images, input_ids)`` returns ``(image_emb, text_emb, logit_scale)`` — (B, E), (B, E)
    and the scalar ``1 / temperature`` — which is exactly what
    :func:`mmcourse.losses.contrastive_loss` takes.
    """

    def __init__(self, config: DualEncoderConfig) -> None:
        super().__init__()
        self.config = config
        if config.image_tower == "cnn":
            self.image_tower: nn.Module = ConvTower(config.width, config.image_layers)
        else:
            self.image_tower = ViT(ViTConfig(
                image_size=config.image_size, patch_size=config.patch_size,
                hidden_size=config.width, num_hidden_layers=config.image_layers,
                num_attention_heads=config.num_heads, intermediate_size=config.mlp_dim,
                layer_norm_eps=1e-5, add_pooling_layer=False,
            ))
        self.text_tower = TextTower(config)
        self.image_proj = nn.Linear(config.width, config.embed_dim, bias=False)
        self.text_proj = nn.Linear(config.width, config.embed_dim, bias=False)
        # CLIP's parametrisation: the log of 1 / temperature, so the scale stays positive
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / config.temperature)),
                                            requires_grad=config.learn_temperature)

    @property
    def logit_scale(self) -> torch.Tensor:
        """``1 / temperature``, clamped at 100 as in CLIP (a scalar tensor)."""
        return self.log_logit_scale.exp().clamp(max=100.0)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """The image tower's pooled output before the projection: (B, 3, H, W) -> (B, width)."""
        size = self.config.image_size
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(
                f"expected images of shape (B, 3, {size}, {size}), got {tuple(images.shape)}"
            )
        if self.config.image_tower == "vit":
            # (B, 1 + N, D) -> (B, D): the [CLS] token
            return self.image_tower(images).last_hidden_state[:, 0]
        return self.image_tower(images)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings: (B, 3, H, W) -> (B, embed_dim)."""
        return F.normalize(self.image_proj(self.image_features(images)), dim=-1)

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """L2-normalised text embeddings: token ids (B, N), padded with ``pad_id`` ->
        (B, embed_dim)."""
        return F.normalize(self.text_proj(self.text_tower(input_ids)), dim=-1)

    def forward(
        self, images: torch.Tensor, input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embed a batch of pairs: ``(image_emb (B, E), text_emb (B, E), logit_scale ())``."""
        return self.encode_image(images), self.encode_text(input_ids), self.logit_scale
