"""The Vision Transformer (ViT, Dosovitskiy et al. 2021), from scratch.

An image is cut into patches, each patch embedded as a token, a learned [CLS] token prepended and learned
position embeddings added; a stack of pre-norm encoder blocks and a final LayerNorm follow. The
architecture is that of ``transformers.ViTModel``: ``ViT.from_transformers`` loads its weights and
reproduces its outputs. Built in §39.1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmcourse.nn import ACTIVATIONS, EncoderBlock, PatchEmbedding

#: transformers 4.x names of ViTModel's tensors -> their 5.x names (4.x is what Colab may still ship)
_LEGACY_NAMES: tuple[tuple[str, str], ...] = (
    ("encoder.layer.", "layers."),
    ("attention.attention.query", "attention.q_proj"),
    ("attention.attention.key", "attention.k_proj"),
    ("attention.attention.value", "attention.v_proj"),
    ("attention.output.dense", "attention.o_proj"),
    ("intermediate.dense", "mlp.fc1"),
    ("output.dense", "mlp.fc2"),  # after "attention.output.dense", which is gone by now
)


@dataclass
class ViTConfig:
    """The ViT's hyper-parameters; the defaults are ViT-Base/16 at 224 x 224, as in ``transformers``.

    Built in §39.1.
    """

    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    add_pooling_layer: bool = True

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size must be divisible by num_attention_heads, got hidden_size={self.hidden_size} "
                f"and num_attention_heads={self.num_attention_heads}"
            )
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"image_size must be divisible by patch_size, got image_size={self.image_size} "
                f"and patch_size={self.patch_size}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"unknown hidden_act {self.hidden_act!r}, expected one of {sorted(ACTIVATIONS)}")

    @property
    def num_patches(self) -> int:
        """N, the number of patch tokens: (image_size / patch_size) ** 2."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def tiny(cls) -> ViTConfig:
        """The book's small ViT: 64 x 64 RGB images, 8 x 8 patches (64 tokens + [CLS]), width 64,
        4 layers of 4 heads; about 0.2 M parameters, trains on a CPU in a minute."""
        return cls(
            image_size=64, patch_size=8, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
            intermediate_size=256,
        )


@dataclass
class ViTOutput:
    """What ``ViT.forward`` returns. Built in §39.1.

    - ``last_hidden_state``: (B, 1 + N, D), after the final LayerNorm; token 0 is [CLS].
    - ``pooler_output``: (B, D), ``tanh(Linear(CLS))``, or None without a pooling layer.
    - ``hidden_states``: the embeddings and each block's output, 1 + num_hidden_layers tensors of
      (B, 1 + N, D) (the last one before the final LayerNorm), or None.
    - ``attentions``: each block's attention weights, num_hidden_layers tensors of (B, heads, 1 + N, 1 + N),
      or None.
    """

    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class ViT(nn.Module):
    """The Vision Transformer encoder: pixel_values (B, C, H, W) -> tokens (B, 1 + N, D). Built in §39.1."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.hidden_size
        self.patch_embed = PatchEmbedding(config.patch_size, config.num_channels, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.num_patches, dim))
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, config.num_attention_heads, config.intermediate_size, config.hidden_act,
                         config.layer_norm_eps)
            for _ in range(config.num_hidden_layers)
        )
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.pooler = nn.Linear(dim, dim) if config.add_pooling_layer else None
        self.apply(self._init_weights)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The tokens the first block reads, ``z_0`` of equation (vit): the [CLS] token and the patch
        embeddings, plus the position embeddings; (B, C, H, W) -> (B, 1 + N, D)."""
        config = self.config
        expected = (config.num_channels, config.image_size, config.image_size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"expected pixel_values of shape (B, {', '.join(map(str, expected))}), "
                f"got {tuple(pixel_values.shape)}"
            )
        x = self.patch_embed(pixel_values)  # (B, C, H, W) -> (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (1, 1, D) -> (B, 1, D)
        return torch.cat([cls, x], dim=1) + self.pos_embed  # -> (B, 1 + N, D)

    def head(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What follows the last block: the final LayerNorm, then the pooler on the [CLS] token if
        there is one; (B, 1 + N, D) -> ``(last_hidden_state (B, 1 + N, D), pooler_output (B, D) or
        None)``."""
        x = self.norm(x)
        pooled = None if self.pooler is None else torch.tanh(self.pooler(x[:, 0]))  # (B, 1 + N, D) -> (B, D)
        return x, pooled

    def forward(
        self, pixel_values: torch.Tensor, output_attentions: bool = False, output_hidden_states: bool = False
    ) -> ViTOutput:
        """Encode images ``pixel_values`` (B, C, H, W), C, H and W as in the config; see ``ViTOutput``."""
        x = self.embed(pixel_values)  # (B, C, H, W) -> (B, 1 + N, D): [CLS] and patches, plus positions
        hidden_states, attentions = [x], []
        for block in self.blocks:
            x, weights = block(x, return_attention=output_attentions)
            hidden_states.append(x)
            attentions.append(weights)
        last_hidden_state, pooled = self.head(x)  # the final LayerNorm (and the pooler)
        return ViTOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=pooled,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )

    @classmethod
    def from_transformers(cls, model: nn.Module) -> ViT:
        """A ViT with the configuration and weights of ``model``, a ``transformers.ViTModel`` (4.x or 5.x
        weight names), in eval mode. Built in §39.1."""
        state = model.state_dict()
        for old, new in _LEGACY_NAMES:
            state = {name.replace(old, new): tensor for name, tensor in state.items()}
        hf = getattr(model, "config", None)
        if getattr(hf, "model_type", None) != "vit" or "embeddings.cls_token" not in state:
            raise TypeError(
                f"expected a transformers ViTModel, got {type(model).__name__} "
                "(for ViTForImageClassification, pass its .vit)"
            )
        config = ViTConfig(
            image_size=_square(hf.image_size, "image_size"),
            patch_size=_square(hf.patch_size, "patch_size"),
            num_channels=hf.num_channels,
            hidden_size=hf.hidden_size,
            num_hidden_layers=hf.num_hidden_layers,
            num_attention_heads=hf.num_attention_heads,
            intermediate_size=hf.intermediate_size,
            hidden_act=hf.hidden_act,
            layer_norm_eps=hf.layer_norm_eps,
            add_pooling_layer="pooler.dense.weight" in state,
        )
        if config.add_pooling_layer and (hf.pooler_act != "tanh" or hf.pooler_output_size != hf.hidden_size):
            raise ValueError(
                "only a tanh pooler of width hidden_size is supported, got pooler_act="
                f"{hf.pooler_act!r} and pooler_output_size={hf.pooler_output_size} (hidden_size={hf.hidden_size})"
            )
        if not hf.qkv_bias:  # transformers' q/k/v projections then have no bias: a zero bias is the same thing
            for i in range(config.num_hidden_layers):
                for proj in ("q_proj", "k_proj", "v_proj"):
                    state[f"layers.{i}.attention.{proj}.bias"] = torch.zeros(config.hidden_size)
        vit = cls(config)
        vit.load_state_dict({ours: state[theirs] for ours, theirs in _transformers_names(config).items()})
        return vit.eval()


def _square(size: int | list[int] | tuple[int, int], name: str) -> int:
    """``size`` of a transformers config (an int or a (height, width) pair) as one int; only squares."""
    if isinstance(size, int):
        return size
    if size[0] != size[1]:
        raise ValueError(f"only square {name} is supported, got {tuple(size)}")
    return size[0]


def _transformers_names(config: ViTConfig) -> dict[str, str]:
    """Our parameter name -> the name of the same tensor in transformers' ViTModel (5.x names)."""
    modules = {"patch_embed.proj": "embeddings.patch_embeddings.projection", "norm": "layernorm"}
    if config.add_pooling_layer:
        modules["pooler"] = "pooler.dense"
    for i in range(config.num_hidden_layers):
        for ours, theirs in (
            ("norm1", "layernorm_before"),
            ("attn.q_proj", "attention.q_proj"),
            ("attn.k_proj", "attention.k_proj"),
            ("attn.v_proj", "attention.v_proj"),
            ("attn.out_proj", "attention.o_proj"),
            ("norm2", "layernorm_after"),
            ("mlp.fc1", "mlp.fc1"),
            ("mlp.fc2", "mlp.fc2"),
        ):
            modules[f"blocks.{i}.{ours}"] = f"layers.{i}.{theirs}"
    names = {"cls_token": "embeddings.cls_token", "pos_embed": "embeddings.position_embeddings"}
    for ours, theirs in modules.items():
        names |= {f"{ours}.weight": f"{theirs}.weight", f"{ours}.bias": f"{theirs}.bias"}
    return names
