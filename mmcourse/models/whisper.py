"""Whisper, written from scratch: an encoder over log-mel frames and a text decoder that reads it.

The encoder is two 1-D convolutions (the second with stride 2, so 100 mel frames a second become
50 positions), GELU after each, fixed sinusoidal positions and pre-norm transformer blocks. The
decoder embeds tokens with learned positions; each block attends causally to the text so far,
then across to the encoder's output, then applies its MLP; its output layer is the token
embedding, transposed. Keys have no bias (``k_proj``), as in OpenAI's code. Parameter names follow
``transformers``' ``WhisperForConditionalGeneration``, so that :meth:`Whisper.from_transformers`
loads its weights one to one. Built in §41.1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: one decoder block's cache: (self-attention keys, values, cross-attention keys, values)
BlockCache = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class WhisperConfig:
    """The sizes of a :class:`Whisper`. ``max_source_positions`` encoder positions hold
    ``2 * max_source_positions`` mel frames (1500 and 30 s in the released models). Token
    embeddings are not scaled: ``transformers``' ``scale_embedding`` is never applied by its
    Whisper, so ours has no such setting."""

    vocab_size: int
    num_mel_bins: int = 80
    d_model: int = 64
    encoder_layers: int = 2
    decoder_layers: int = 2
    encoder_attention_heads: int = 4
    decoder_attention_heads: int = 4
    encoder_ffn_dim: int = 256
    decoder_ffn_dim: int = 256
    max_source_positions: int = 1500
    max_target_positions: int = 448

    def __post_init__(self) -> None:
        for heads in (self.encoder_attention_heads, self.decoder_attention_heads):
            if self.d_model % heads:
                raise ValueError(f"d_model ({self.d_model}) must be divisible by the number of "
                                 f"heads, got {heads}")


def sinusoids(length: int, channels: int) -> torch.Tensor:
    """Whisper's fixed encoder positions, (length, channels): sines then cosines of
    ``position / 10000 ** (k / (channels / 2 - 1))`` for k = 0 .. channels / 2 - 1."""
    if channels % 2:
        raise ValueError(f"channels must be even, got {channels}")
    increment = math.log(10_000) / (channels // 2 - 1)
    inverse = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inverse[None]  # (L, C/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class WhisperAttention(nn.Module):
    """Multi-head attention with Whisper's projections (no bias on the keys). Self-attention when
    ``context`` is None, cross-attention to ``context`` otherwise."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(3))
        self.k_proj = nn.Linear(dim, dim, bias=False)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, heads, L, head_dim)."""
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                causal_from: int | None = None) -> torch.Tensor:
        """Attend from ``x`` (B, L, D) to ``keys``/``values`` (B, heads, S, head_dim); with
        ``causal_from`` = P, query i sees keys 0 .. P + i (the P earlier ones are cached)."""
        q = self.split(self.q_proj(x))
        mask = None
        if causal_from is not None:
            rows = torch.arange(x.shape[1], device=x.device)[:, None] + causal_from
            mask = rows >= torch.arange(keys.shape[2], device=x.device)[None]  # (L, S)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(x.shape))  # (B, L, D)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.k_proj(x)), self.split(self.v_proj(x))


class WhisperEncoderLayer(nn.Module):
    """Pre-norm self-attention and MLP, each added back to the stream."""

    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn, self.self_attn_layer_norm = WhisperAttention(dim, heads), nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.self_attn_layer_norm(x)
        x = x + self.self_attn(h, *self.self_attn.keys_values(h))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class WhisperEncoder(nn.Module):
    """Log-mel (B, num_mel_bins, frames) -> (B, frames // 2, d_model)."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        d = config.d_model
        self.conv1 = nn.Conv1d(config.num_mel_bins, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(config.max_source_positions, d)
        self.embed_positions.weight.data.copy_(sinusoids(config.max_source_positions, d))
        self.embed_positions.requires_grad_(False)  # fixed, as in Whisper
        self.layers = nn.ModuleList(
            WhisperEncoderLayer(d, config.encoder_attention_heads, config.encoder_ffn_dim)
            for _ in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        if input_features.dim() != 3 or input_features.shape[1] != self.conv1.in_channels:
            raise ValueError(f"expected input_features of shape (B, {self.conv1.in_channels}, "
                             f"frames), got {tuple(input_features.shape)}")
        x = F.gelu(self.conv2(F.gelu(self.conv1(input_features)))).transpose(1, 2)  # (B, T, D)
        if x.shape[1] > self.embed_positions.num_embeddings:
            raise ValueError(f"at most {2 * self.embed_positions.num_embeddings} mel frames, got "
                             f"{input_features.shape[-1]}")
        x = x + self.embed_positions.weight[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)


class WhisperDecoderLayer(nn.Module):
    """Pre-norm causal self-attention, cross-attention to the audio, MLP."""

    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn, self.self_attn_layer_norm = WhisperAttention(dim, heads), nn.LayerNorm(dim)
        self.encoder_attn = WhisperAttention(dim, heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, audio: torch.Tensor, cache: BlockCache | None
                ) -> tuple[torch.Tensor, BlockCache]:
        h = self.self_attn_layer_norm(x)
        k, v = self.self_attn.keys_values(h)
        past = 0
        if cache is not None:
            past = cache[0].shape[2]
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        x = x + self.self_attn(h, k, v, causal_from=past)
        ck, cv = cache[2:] if cache is not None else self.encoder_attn.keys_values(audio)
        x = x + self.encoder_attn(self.encoder_attn_layer_norm(x), ck, cv)
        x = x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        return x, (k, v, ck, cv)


class WhisperDecoder(nn.Module):
    """Tokens (B, L) and the encoder's output -> hidden states (B, L, d_model), and the cache."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        d = config.d_model
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        self.embed_positions = nn.Embedding(config.max_target_positions, d)
        self.layers = nn.ModuleList(
            WhisperDecoderLayer(d, config.decoder_attention_heads, config.decoder_ffn_dim)
            for _ in range(config.decoder_layers))
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, input_ids: torch.Tensor, audio: torch.Tensor,
                cache: list[BlockCache] | None = None) -> tuple[torch.Tensor, list[BlockCache]]:
        past = 0 if cache is None else cache[0][0].shape[2]
        if past + input_ids.shape[1] > self.embed_positions.num_embeddings:
            raise ValueError(f"at most {self.embed_positions.num_embeddings} decoder tokens, got "
                             f"{past + input_ids.shape[1]}")
        x = self.embed_tokens(input_ids)  # not scaled (transformers' scale_embedding is unused)
        x = x + self.embed_positions.weight[past: past + input_ids.shape[1]]
        new = []
        for k, layer in enumerate(self.layers):
            x, block = layer(x, audio, None if cache is None else cache[k])
            new.append(block)
        return self.layer_norm(x), new


@dataclass
class WhisperOutput:
    """``logits`` (B, L, vocab_size); ``cache`` for the next decoding step."""

    logits: torch.Tensor
    cache: list[BlockCache] | None = None


class Whisper(nn.Module):
    """The encoder-decoder of Whisper; ``forward(input_features=, decoder_input_ids=)`` gives the
    next-token logits, as ``WhisperForConditionalGeneration`` does. Built in §41.1."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder, self.decoder = WhisperEncoder(config), WhisperDecoder(config)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module, std: float = 0.02) -> None:
        """transformers' initialisation (``init_std`` 0.02): normal weights, zero biases, token
        and decoder positions normal too; the encoder's sinusoids stay. PyTorch's defaults
        (N(0, 1) embeddings) make the tied output layer's first logits ~8 times too large."""
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and module.weight.requires_grad:
            nn.init.normal_(module.weight, std=std)

    def forward(self, input_features: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor | None = None,
                encoder_outputs: torch.Tensor | None = None,
                cache: list[BlockCache] | None = None) -> WhisperOutput:
        if decoder_input_ids is None:
            raise ValueError("decoder_input_ids is required")
        if encoder_outputs is None:
            if input_features is None:
                raise ValueError("give input_features or encoder_outputs")
            encoder_outputs = self.encoder(input_features)
        hidden, cache = self.decoder(decoder_input_ids, encoder_outputs, cache)
        logits = hidden @ self.decoder.embed_tokens.weight.T  # tied output layer
        return WhisperOutput(logits=logits, cache=cache)

    @torch.no_grad()
    def generate(self, input_features: torch.Tensor, decoder_input_ids: torch.Tensor,
                 max_new_tokens: int, eos_token_id: int | None = None) -> torch.Tensor:
        """Greedy decoding with the cache: the prompt ``decoder_input_ids`` (B, P) followed by up
        to ``max_new_tokens`` argmax tokens; rows that wrote ``eos_token_id`` repeat it, and
        decoding stops when all have."""
        if max_new_tokens < 0:
            raise ValueError(f"expected max_new_tokens >= 0, got {max_new_tokens}")
        audio = self.encoder(input_features)
        out = self(encoder_outputs=audio, decoder_input_ids=decoder_input_ids)
        tokens = decoder_input_ids
        done = torch.zeros(len(tokens), dtype=torch.bool, device=tokens.device)
        for step in range(max_new_tokens):
            nxt = out.logits[:, -1].argmax(-1)  # (B,)
            if eos_token_id is not None:
                nxt = nxt.masked_fill(done, eos_token_id)
                done = done | (nxt == eos_token_id)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            out = self(encoder_outputs=audio, decoder_input_ids=nxt[:, None], cache=out.cache)
        return tokens

    @classmethod
    def from_transformers(cls, model: nn.Module) -> Whisper:
        """A Whisper with the configuration and weights of ``model``, a
        ``transformers.WhisperForConditionalGeneration``, in eval mode, on ``model``'s device."""
        hf = getattr(model, "config", None)
        if getattr(hf, "model_type", None) != "whisper" or not hasattr(model, "proj_out"):
            raise TypeError(f"expected a transformers WhisperForConditionalGeneration, got "
                            f"{type(model).__name__}")
        if hf.activation_function != "gelu":
            raise ValueError(f"expected activation_function='gelu', got {hf.activation_function!r}")
        fields = WhisperConfig.__dataclass_fields__
        ours = cls(WhisperConfig(**{k: getattr(hf, k) for k in fields}))
        state = {k.removeprefix("model."): v for k, v in model.state_dict().items()
                 if k != "proj_out.weight"}
        ours.load_state_dict(state)
        device = next(model.parameters()).device
        return ours.to(device).eval()
