"""Connectors that turn a variable number of image features into a fixed number of tokens for a
language model: BLIP-2's Q-Former and Flamingo's Perceiver Resampler.

- ``QFormer`` (Li et al. 2023): learned query embeddings (B, Q, D) pass through BERT-style
  post-norm layers; each layer lets the queries attend to each other, every
  ``cross_attention_frequency``-th layer also lets them attend to the image features (B, N, E),
  then a feed-forward network. ``QFormer.from_transformers`` loads a transformers
  ``Blip2QFormerModel`` and reproduces its ``last_hidden_state`` (queries only, no text input).
- ``PerceiverResampler`` (Alayrac et al. 2022): learned latents (n_latents, D) attend to the
  concatenation [context; latents] in pre-norm blocks, then a final LayerNorm, so any number of
  context tokens becomes n_latents tokens. ``PerceiverResampler.from_transformers`` loads IDEFICS's
  ``IdeficsPerceiverResampler`` and reproduces its output.

Built in §40.4.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.models.fusion import CrossAttention
from mmcourse.nn import MLP, MultiHeadAttention


# ---------------------------------------------------------------------------------- Q-Former
@dataclass
class QFormerOutput:
    """What ``QFormer.forward`` returns. Built in §40.4.

    - ``last_hidden_state``: (B, Q, D), the queries after the last layer.
    """

    last_hidden_state: torch.Tensor


class QFormerLayer(nn.Module):
    """One BERT-style post-norm Q-Former layer on the queries x (B, Q, dim):

    ``x = norm1(x + self_attn(x))``; if ``has_cross_attention``,
    ``x = norm2(x + cross_attn(x, image))`` with image (B, N, encoder_dim); then
    ``x = norm3(x + mlp(x))``. Output (B, Q, dim). Built in §40.4.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        encoder_dim: int,
        has_cross_attention: bool,
        activation: str = "gelu",
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.has_cross_attention = has_cross_attention
        if has_cross_attention:
            self.cross_attn = CrossAttention(dim, num_heads, encoder_dim)
            self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_dim, activation)
        self.norm3 = nn.LayerNorm(dim, eps=eps)

    def forward(
        self, x: torch.Tensor, image: torch.Tensor, image_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, Q, dim), image (B, N, encoder_dim), ``image_mask`` a bool tensor broadcastable to
        (B, heads, Q, N), True where a query may attend to an image token. Returns (B, Q, dim)."""
        x = self.norm1(x + self.self_attn(x)[0])
        if self.has_cross_attention:
            x = self.norm2(x + self.cross_attn(x, image, image_mask)[0])
        return self.norm3(x + self.mlp(x))


class QFormer(nn.Module):
    """BLIP-2's querying transformer over given query embeddings (no text input).

    ``query_embeds`` (B, Q, dim) are layer-normed, then pass ``num_layers`` :class:`QFormerLayer`;
    layer i cross-attends to ``encoder_hidden_states`` (B, N, encoder_dim) when
    ``i % cross_attention_frequency == 0``. Returns a :class:`QFormerOutput` with
    ``last_hidden_state`` (B, Q, dim). No dropout: the model always computes what transformers'
    model computes in eval mode. Built in §40.4.
    """

    def __init__(
        self,
        dim: int = 768,
        num_heads: int = 12,
        num_layers: int = 12,
        mlp_dim: int = 3072,
        encoder_dim: int = 1408,
        cross_attention_frequency: int = 2,
        activation: str = "gelu",
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        if cross_attention_frequency < 1:
            raise ValueError(
                f"expected cross_attention_frequency >= 1, got {cross_attention_frequency}"
            )
        self.dim, self.encoder_dim = dim, encoder_dim
        self.layernorm = nn.LayerNorm(dim, eps=eps)
        self.layers = nn.ModuleList(
            QFormerLayer(dim, num_heads, mlp_dim, encoder_dim,
                         i % cross_attention_frequency == 0, activation, eps)
            for i in range(num_layers)
        )

    def forward(
        self,
        query_embeds: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> QFormerOutput:
        """query_embeds (B, Q, dim), encoder_hidden_states (B, N, encoder_dim),
        ``encoder_attention_mask`` (B, N), 1 or True for image tokens the queries may attend to.
        Returns a :class:`QFormerOutput` with ``last_hidden_state`` (B, Q, dim)."""
        if query_embeds.dim() != 3 or query_embeds.shape[-1] != self.dim:
            raise ValueError(f"expected query_embeds of shape (B, Q, {self.dim}), "
                             f"got {tuple(query_embeds.shape)}")
        if (encoder_hidden_states.dim() != 3 or encoder_hidden_states.shape[-1] != self.encoder_dim
                or encoder_hidden_states.shape[0] != query_embeds.shape[0]):
            raise ValueError(
                f"expected encoder_hidden_states of shape ({query_embeds.shape[0]}, N, "
                f"{self.encoder_dim}), got {tuple(encoder_hidden_states.shape)}"
            )
        mask = None
        if encoder_attention_mask is not None:
            if encoder_attention_mask.shape != encoder_hidden_states.shape[:2]:
                raise ValueError(
                    f"expected encoder_attention_mask of shape {tuple(encoder_hidden_states.shape[:2])}"
                    f", got {tuple(encoder_attention_mask.shape)}"
                )
            mask = encoder_attention_mask.bool()[:, None, None, :]  # (B, N) -> (B, 1, 1, N)
        x = self.layernorm(query_embeds)
        for layer in self.layers:
            x = layer(x, encoder_hidden_states, mask)  # (B, Q, D) -> (B, Q, D)
        return QFormerOutput(last_hidden_state=x)

    @classmethod
    def from_transformers(cls, model: nn.Module) -> QFormer:
        """A Q-Former with the configuration and weights of ``model``, a transformers
        ``Blip2QFormerModel``, in eval mode. Only the query path is loaded (the text-input weights
        of ``use_qformer_text_input=True`` models are not used on queries)."""
        if not hasattr(model, "encoder") or not hasattr(model, "layernorm"):
            raise TypeError(f"expected a transformers Blip2QFormerModel, got {type(model).__name__}")
        config = model.config
        ours = cls(config.hidden_size, config.num_attention_heads, config.num_hidden_layers,
                   config.intermediate_size, config.encoder_hidden_size,
                   config.cross_attention_frequency, config.hidden_act, config.layer_norm_eps)
        state = {"layernorm.weight": model.layernorm.weight, "layernorm.bias": model.layernorm.bias}
        for i, layer in enumerate(model.encoder.layer):
            attentions = [("self_attn", "norm1", "attention")]
            if layer.has_cross_attention:
                attentions.append(("cross_attn", "norm2", "crossattention"))
            for ours_attn, ours_norm, theirs in attentions:
                block = getattr(layer, theirs)
                for a, b in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value")):
                    for p in ("weight", "bias"):
                        state[f"layers.{i}.{ours_attn}.{a}.{p}"] = getattr(getattr(block.attention, b), p)
                for p in ("weight", "bias"):
                    state[f"layers.{i}.{ours_attn}.out_proj.{p}"] = getattr(block.output.dense, p)
                    state[f"layers.{i}.{ours_norm}.{p}"] = getattr(block.output.LayerNorm, p)
            for p in ("weight", "bias"):
                state[f"layers.{i}.mlp.fc1.{p}"] = getattr(layer.intermediate_query.dense, p)
                state[f"layers.{i}.mlp.fc2.{p}"] = getattr(layer.output_query.dense, p)
                state[f"layers.{i}.norm3.{p}"] = getattr(layer.output_query.LayerNorm, p)
        ours.load_state_dict({k: v.detach().clone() for k, v in state.items()})
        return ours.eval()


# ------------------------------------------------------------------------ Perceiver Resampler
class PerceiverAttention(nn.Module):
    """The Perceiver Resampler's attention: the latents (B, L, dim) attend to [context; latents]
    (B, N + L, dim), after a LayerNorm of each; projections without bias to ``num_heads`` heads of
    ``head_dim`` channels (``num_heads * head_dim`` need not equal ``dim``); ``qk_norm`` adds a
    LayerNorm over ``head_dim`` on queries and keys. Output (B, L, dim). Built in §40.4.
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int, qk_norm: bool = False) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.context_norm = nn.LayerNorm(dim)
        self.latents_norm = nn.LayerNorm(dim)
        self.q_norm = nn.LayerNorm(head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head_dim) if qk_norm else nn.Identity()
        self.q_proj = nn.Linear(dim, inner, bias=False)
        self.k_proj = nn.Linear(dim, inner, bias=False)
        self.v_proj = nn.Linear(dim, inner, bias=False)
        self.out_proj = nn.Linear(inner, dim, bias=False)

    def forward(self, context: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """context (B, N, dim), latents (B, L, dim) -> (B, L, dim)."""
        context, latents = self.context_norm(context), self.latents_norm(latents)
        both = torch.cat([context, latents], dim=1)  # (B, N + L, dim)
        batch = latents.shape[0]

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, M, h * d) -> (B, h, M, d)
            return x.view(batch, x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

        q = self.q_norm(heads(self.q_proj(latents)))  # (B, h, L, d)
        k = self.k_norm(heads(self.k_proj(both)))  # (B, h, N + L, d)
        v = heads(self.v_proj(both))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, L, d)
        return self.out_proj(out.transpose(1, 2).flatten(2))  # (B, h, L, d) -> (B, L, dim)


class PerceiverResampler(nn.Module):
    """Flamingo's Perceiver Resampler, as in IDEFICS: context (B, N, dim) -> (B, num_latents, dim).

    ``num_latents`` learned latents pass ``depth`` blocks of
    ``latents = latents + attn(context, latents)`` (:class:`PerceiverAttention`) and
    ``latents = latents + ff(latents)`` (LayerNorm, Linear, ReLU, Linear, no biases, width
    ``mlp_dim``, 4 * dim by default), then a final LayerNorm. Built in §40.4.
    """

    def __init__(
        self,
        dim: int,
        depth: int = 6,
        num_heads: int = 16,
        head_dim: int = 96,
        num_latents: int = 64,
        mlp_dim: int | None = None,
        qk_norm: bool = False,
    ) -> None:
        super().__init__()
        self.dim = dim
        mlp_dim = mlp_dim or 4 * dim
        self.latents = nn.Parameter(torch.randn(num_latents, dim))
        self.attns = nn.ModuleList(
            PerceiverAttention(dim, num_heads, head_dim, qk_norm) for _ in range(depth)
        )
        self.ffs = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mlp_dim, bias=False), nn.ReLU(),
                          nn.Linear(mlp_dim, dim, bias=False))
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """context (B, N, dim) -> latents (B, num_latents, dim)."""
        if context.dim() != 3 or context.shape[-1] != self.dim:
            raise ValueError(f"expected context of shape (B, N, {self.dim}), got {tuple(context.shape)}")
        latents = self.latents.expand(context.shape[0], -1, -1)  # (L, D) -> (B, L, D)
        for attn, ff in zip(self.attns, self.ffs):
            latents = latents + attn(context, latents)
            latents = latents + ff(latents)
        return self.norm(latents)

    @classmethod
    def from_transformers(cls, model: nn.Module) -> PerceiverResampler:
        """A resampler with the configuration and weights of ``model``, a transformers
        ``IdeficsPerceiverResampler``, in eval mode."""
        if not hasattr(model, "latents") or not hasattr(model, "blocks"):
            raise TypeError(
                f"expected a transformers IdeficsPerceiverResampler, got {type(model).__name__}"
            )
        ours = cls(model.embed_dim, len(model.blocks), model.n_heads, model.head_dim,
                   model.n_latents, model.intermediate_dim, model.qk_layer_norms)
        state = {"latents": model.latents, "norm.weight": model.layer_norm.weight,
                 "norm.bias": model.layer_norm.bias}
        pairs = [("context_norm", "context_layer_norm"), ("latents_norm", "latents_layer_norm")]
        if model.qk_layer_norms:
            pairs += [("q_norm", "q_layer_norm"), ("k_norm", "k_layer_norm")]
        for i, (attn, ff) in enumerate(model.blocks):
            for a, b in pairs:
                for p in ("weight", "bias"):
                    state[f"attns.{i}.{a}.{p}"] = getattr(getattr(attn, b), p)
            for a, b in (("q_proj", "q_proj"), ("k_proj", "k_proj"), ("v_proj", "v_proj"),
                         ("out_proj", "output_proj")):
                state[f"attns.{i}.{a}.weight"] = getattr(attn, b).weight
            state[f"ffs.{i}.0.weight"], state[f"ffs.{i}.0.bias"] = ff.ln.weight, ff.ln.bias
            state[f"ffs.{i}.1.weight"] = ff.fc.weight
            state[f"ffs.{i}.3.weight"] = ff.c_proj.weight
        ours.load_state_dict({k: v.detach().clone() for k, v in state.items()})
        return ours.eval()
