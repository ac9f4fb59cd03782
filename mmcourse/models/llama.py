"""A Llama-style decoder-only language model: RMSNorm, rotary position embeddings, a SwiGLU MLP,
grouped-query attention and a key/value cache for generation.

The architecture is that of ``transformers.LlamaForCausalLM``: ``LlamaLM.from_transformers`` loads its
weights and reproduces its logits. Built in §40.4.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.models.checkpoint import SafetensorsCheckpoint
from mmcourse.models.fusion import SwiGLU
from mmcourse.nn import mask_to_bias

#: one (keys, values) pair per layer, each (B, num_key_value_heads, T, head_dim)
KVCache = tuple[tuple[torch.Tensor, torch.Tensor], ...]


@dataclass
class LlamaConfig:
    """The decoder's hyper-parameters; the defaults are a tiny model for tests and toy runs.

    ``num_key_value_heads`` < ``num_attention_heads`` gives grouped-query attention (each key/value
    head serves ``num_attention_heads // num_key_value_heads`` query heads); equal gives multi-head
    attention. ``head_dim`` defaults to ``hidden_size // num_attention_heads``. Built in §40.4.
    """

    vocab_size: int = 256
    hidden_size: int = 64
    intermediate_size: int = 172
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int | None = None
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads != 0:
                raise ValueError(
                    "hidden_size must be divisible by num_attention_heads when head_dim is not given, got "
                    f"hidden_size={self.hidden_size} and num_attention_heads={self.num_attention_heads}"
                )
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.head_dim % 2 != 0:
            raise ValueError(f"rotary embeddings need an even head_dim, got head_dim={self.head_dim}")
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                "num_attention_heads must be divisible by num_key_value_heads, got "
                f"num_attention_heads={self.num_attention_heads} and num_key_value_heads={self.num_key_value_heads}"
            )


@dataclass
class LlamaOutput:
    """What ``LlamaLM.forward`` returns, named as in ``transformers``. Built in §40.4.

    - ``logits``: (B, L, vocab_size), next-token scores at every position.
    - ``past_key_values``: the cache after this call (``KVCache``), or None without ``use_cache``.
    """

    logits: torch.Tensor
    past_key_values: KVCache | None = None


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension, the rotation convention of
    ``transformers``' Llama: (..., d) -> (..., d). Built in §40.4."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotary_cos_sin(
    position_ids: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cosines and sines of rotary position embeddings at ``position_ids`` (B, L), each
    (B, L, head_dim): channel pair ``i`` turns at frequency ``theta ** (-2i / head_dim)``, and the
    frequencies are repeated over the two halves (matching ``rotate_half``). Built in §40.4."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=position_ids.device).float() / head_dim)
    angles = position_ids.float()[..., None] * inv_freq  # (B, L, 1) * (head_dim/2,) -> (B, L, head_dim/2)
    angles = torch.cat((angles, angles), dim=-1)  # (B, L, head_dim)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x`` (B, heads, L, head_dim) by the angles whose ``cos`` and ``sin``
    are (B, L, head_dim): (B, heads, L, head_dim) -> same. Built in §40.4."""
    cos, sin = cos[:, None], sin[:, None]  # (B, 1, L, head_dim), broadcast over heads
    return x * cos + rotate_half(x) * sin


class LlamaAttention(nn.Module):
    """Causal grouped-query self-attention with rotary embeddings and a key/value cache, no biases.

    ``x`` (B, L, hidden) -> (B, L, hidden), plus the layer's cache ``(keys, values)``, each
    (B, kv_heads, T + L, head_dim) for ``T`` cached positions. Built in §40.4.
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        bias: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x`` (B, L, hidden); ``cos``, ``sin`` (B, L, head_dim) at the new positions; ``bias``
        (B, 1, L, T + L) additive (0 = may attend); ``past`` the cached (keys, values) or None."""
        batch, length, _ = x.shape
        # (B, L, heads * head_dim) -> (B, heads, L, head_dim)
        q = self.q_proj(x).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if past is not None:  # (B, kv_heads, T, head_dim) + (B, kv_heads, L, head_dim) -> (B, kv_heads, T + L, head_dim)
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        groups = self.num_heads // self.num_kv_heads  # each key/value head serves `groups` query heads
        out = F.scaled_dot_product_attention(
            q, k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1), attn_mask=bias
        )  # (B, heads, L, head_dim)
        out = out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)
        return self.o_proj(out), (k, v)


class LlamaDecoderLayer(nn.Module):
    """A pre-norm decoder block: ``x = x + attn(rmsnorm(x))`` then ``x = x + swiglu(rmsnorm(x))``;
    (B, L, hidden) -> (B, L, hidden). Built in §40.4."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.self_attn = LlamaAttention(config)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = SwiGLU(config.hidden_size, config.intermediate_size)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        bias: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The arguments are those of ``LlamaAttention.forward``; returns (B, L, hidden) and the cache."""
        attended, cache = self.self_attn(self.input_layernorm(x), cos, sin, bias, past)
        x = x + attended
        return x + self.mlp(self.post_attention_layernorm(x)), cache


class LlamaLM(SafetensorsCheckpoint, nn.Module):
    """A Llama decoder with its language-model head: token ids (B, L) -> next-token logits
    (B, L, vocab_size). Built in §40.4."""

    config_class, config_name = LlamaConfig, "LlamaConfig"  # for the checkpoint methods

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        before_layer: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    ) -> LlamaOutput:
        """Next-token logits for ``input_ids`` (B, L) or ``inputs_embeds`` (B, L, hidden) (exactly one).

        ``attention_mask`` (B, T + L), 1 for real tokens and 0 for padding (left or right), covers
        the ``T`` cached positions of ``past_key_values`` and the ``L`` new ones; positions are counted
        over real tokens only, so a left-padded prompt gets the same rotary angles as an unpadded one.
        Attention is causal on top of it. ``before_layer(i, x)``, if given, rewrites the hidden
        states (B, L, hidden) entering layer ``i`` (Flamingo's gated cross-attention, §40.4).
        Returns ``LlamaOutput`` with logits (B, L, vocab_size) and, with ``use_cache``, the
        updated cache.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(
                "expected exactly one of input_ids and inputs_embeds, got "
                f"input_ids={'None' if input_ids is None else 'a tensor'} and "
                f"inputs_embeds={'None' if inputs_embeds is None else 'a tensor'}"
            )
        if inputs_embeds is None:
            if input_ids.dim() != 2:
                raise ValueError(f"expected input_ids of shape (B, L), got {tuple(input_ids.shape)}")
            inputs_embeds = self.embed_tokens(input_ids)  # (B, L) -> (B, L, hidden)
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.hidden_size:
            raise ValueError(
                f"expected inputs_embeds of shape (B, L, {self.config.hidden_size}), got {tuple(inputs_embeds.shape)}"
            )
        batch, length, _ = inputs_embeds.shape
        cached = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        if past_key_values is not None and len(past_key_values) != len(self.layers):
            raise ValueError(f"expected a cache of {len(self.layers)} layers, got {len(past_key_values)}")
        device = inputs_embeds.device
        if attention_mask is None:
            attention_mask = torch.ones(batch, cached + length, dtype=torch.long, device=device)
        if attention_mask.shape != (batch, cached + length):
            raise ValueError(
                f"expected attention_mask of shape (B, T + L) = {(batch, cached + length)} "
                f"(T = {cached} cached positions), got {tuple(attention_mask.shape)}"
            )
        keep = attention_mask.bool()  # (B, T + L)
        position_ids = (keep.long().cumsum(-1) - 1).clamp(min=0)[:, cached:]  # (B, L), counted over real tokens
        cos, sin = rotary_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta, inputs_embeds.dtype)
        # query i (absolute position cached + i) may see key j if j <= cached + i and key j is not padding
        causal = torch.ones(length, cached + length, dtype=torch.bool, device=device).tril(cached)  # (L, T + L)
        bias = mask_to_bias(causal & keep[:, None, None, :], inputs_embeds.dtype)  # (B, 1, L, T + L)
        x, caches = inputs_embeds, []
        for i, layer in enumerate(self.layers):
            if before_layer is not None:
                x = before_layer(i, x)
            x, cache = layer(x, cos, sin, bias, None if past_key_values is None else past_key_values[i])
            caches.append(cache)
        logits = self.lm_head(self.norm(x))  # (B, L, hidden) -> (B, L, vocab_size)
        return LlamaOutput(logits=logits, past_key_values=tuple(caches) if use_cache else None)

    @torch.no_grad()
    def generate(
        self, input_ids: torch.Tensor, max_new_tokens: int, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Greedy decoding with the key/value cache: the prompt ``input_ids`` (B, L) (left-padded if
        ``attention_mask`` (B, L) marks padding) followed by ``max_new_tokens`` argmax tokens,
        (B, L + max_new_tokens). No end-of-sequence stopping. Built in §40.4."""
        if max_new_tokens < 0:
            raise ValueError(f"expected max_new_tokens >= 0, got {max_new_tokens}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        tokens, step_ids, past = input_ids, input_ids, None
        for _ in range(max_new_tokens):
            out = self(step_ids, attention_mask=attention_mask, past_key_values=past, use_cache=True)
            step_ids = out.logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
            tokens, past = torch.cat((tokens, step_ids), dim=1), out.past_key_values
            attention_mask = torch.cat((attention_mask, torch.ones_like(step_ids)), dim=1)
        return tokens


    @classmethod
    def from_transformers(cls, model: nn.Module) -> LlamaLM:
        """A LlamaLM with the configuration and weights of ``model``, a ``transformers.LlamaForCausalLM``,
        in eval mode. Built in §40.4."""
        hf = getattr(model, "config", None)
        if getattr(hf, "model_type", None) != "llama" or not hasattr(model, "lm_head"):
            raise TypeError(f"expected a transformers LlamaForCausalLM, got {type(model).__name__}")
        return cls.from_transformers_parts(model.model, model.lm_head)

    @classmethod
    def from_transformers_parts(cls, backbone: nn.Module, lm_head: nn.Linear) -> LlamaLM:
        """A LlamaLM from a transformers ``LlamaModel`` ``backbone`` and a separate ``lm_head``, the
        way a ``LlavaForConditionalGeneration`` holds its language model, in eval mode."""
        hf = getattr(backbone, "config", None)
        if getattr(hf, "model_type", None) != "llama" or not hasattr(backbone, "embed_tokens"):
            raise TypeError(f"expected a transformers LlamaModel, got {type(backbone).__name__}")
        rope = getattr(hf, "rope_parameters", None) or {"rope_type": "default", "rope_theta": hf.rope_theta}
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"only the default rotary embeddings are supported, got rope_type={rope['rope_type']!r}")
        if hf.attention_bias or hf.mlp_bias or hf.hidden_act != "silu":
            raise ValueError(
                "expected attention_bias=False, mlp_bias=False and hidden_act='silu', got "
                f"{hf.attention_bias}, {hf.mlp_bias} and {hf.hidden_act!r}"
            )
        config = LlamaConfig(
            vocab_size=hf.vocab_size,
            hidden_size=hf.hidden_size,
            intermediate_size=hf.intermediate_size,
            num_hidden_layers=hf.num_hidden_layers,
            num_attention_heads=hf.num_attention_heads,
            num_key_value_heads=hf.num_key_value_heads,
            head_dim=getattr(hf, "head_dim", None),
            rms_norm_eps=hf.rms_norm_eps,
            rope_theta=rope["rope_theta"],
            tie_word_embeddings=hf.tie_word_embeddings,
        )
        ours = cls(config)
        ours.load_state_dict(backbone.state_dict() | {"lm_head.weight": lm_head.weight})
        return ours.eval()
