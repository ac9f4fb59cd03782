"""VALL-E (Wang et al. 2023), written from scratch: text to speech as language modelling over a
codec's codes, in two models.

The *autoregressive* model (:class:`VALLEAR`) writes the first codebook, the coarse outline of
the speech, one frame at a time, like a text LM writes words: a causal transformer reads the
phonemes, then the first-codebook codes of an *acoustic prompt* (another recording of the voice
to imitate), then ``<bos>`` and the codes written so far, and predicts the next code or
``<eos>``. It decides how long the speech lasts. The *non-autoregressive* model
(:class:`VALLENAR`) fills codebooks 1 .. n-1 (0-based) one at a time, every frame at once: a
bidirectional transformer reads the phonemes, the prompt's codes (all codebooks, embeddings
summed) and the target's codebooks below k (summed), and predicts codebook k; which k it is
working on enters every layer through adaptive layer norm. :func:`synthesize` chains the two.

As in the paper, phonemes and acoustic tokens have separate embeddings, each segment has its
own sinusoidal positions starting at 0, and each output layer shares its weights with the
embedding of the codes it predicts. Unlike the paper, the prompt is a *different* utterance of
the voice (its transcript is not given), so ``<bos>`` stands between the prompt and the target
and the target's positions restart there: the model always knows where the new speech begins.
Built in §41.2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.models.whisper import sinusoids

#: one block's cache: the keys and values (B, heads, S, head_dim) of every position so far
BlockCache = tuple[torch.Tensor, torch.Tensor]


@dataclass
class VALLEConfig:
    """The sizes of a :class:`VALLEAR` / :class:`VALLENAR`: the codec's ``num_quantizers`` and
    ``codebook_size``, the phoneme vocabulary, the transformer, and the longest phoneme segment
    and acoustic segment (prompt; ``<bos>`` + target) the positions cover. Built in §41.2."""

    num_quantizers: int = 8
    codebook_size: int = 1024
    phoneme_vocab_size: int = 64
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 4
    ffn_dim: int = 512
    max_phonemes: int = 256
    max_frames: int = 1024

    def __post_init__(self) -> None:
        for name in ("num_quantizers", "codebook_size", "phoneme_vocab_size", "d_model",
                     "num_heads", "num_layers", "ffn_dim", "max_phonemes", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.num_heads or self.d_model % 2 or self.d_model < 4:
            raise ValueError(f"d_model must be even, at least 4 and divisible by num_heads "
                             f"({self.num_heads}), got {self.d_model}")


class VALLEAttention(nn.Module):
    """Multi-head self-attention that can extend a cache of keys and values: (B, L, D) and a
    bool mask (B, 1, L, S), True where a query may look, -> (B, L, D) and the new cache.
    Built in §41.2."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv, self.out_proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache: BlockCache | None = None
                ) -> tuple[torch.Tensor, BlockCache]:
        b, length, dim = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, L, head_dim)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, length, dim)), (k, v)


class AdaptiveLayerNorm(nn.Module):
    """AdaLN: ``(1 + a) * LayerNorm(h) + b`` with ``(a, b)`` a linear projection of a stage's
    embedding (B, D), so one network behaves differently for each codebook it predicts.
    The projection starts small: every stage starts close to a plain LayerNorm. Built in §41.2."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.proj = nn.Linear(dim, 2 * dim)
        nn.init.normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
        a, b = self.proj(stage)[:, None].chunk(2, dim=-1)  # (B, D) -> two (B, 1, D)
        return (1 + a) * self.norm(x) + b


class VALLEBlock(nn.Module):
    """A pre-norm transformer block; its norms are adaptive (read a stage embedding) when
    ``adaptive``. (B, L, D) -> (B, L, D) and the attention's cache. Built in §41.2."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, adaptive: bool = False) -> None:
        super().__init__()
        norm = AdaptiveLayerNorm if adaptive else nn.LayerNorm
        self.norm1, self.attn, self.norm2 = norm(dim), VALLEAttention(dim, num_heads), norm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim))
        self.adaptive = adaptive

    def forward(self, x: torch.Tensor, mask: torch.Tensor, stage: torch.Tensor | None = None,
                cache: BlockCache | None = None) -> tuple[torch.Tensor, BlockCache]:
        h = self.norm1(x, stage) if self.adaptive else self.norm1(x)
        attended, cache = self.attn(h, mask, cache)
        x = x + attended
        h = self.norm2(x, stage) if self.adaptive else self.norm2(x)
        return x + self.mlp(h), cache


def _check_codes(name: str, codes: torch.Tensor, dims: tuple[int, ...], shape: str) -> None:
    if not isinstance(codes, torch.Tensor) or codes.dim() not in dims or codes.is_floating_point():
        got = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
        raise ValueError(f"expected integer {name} of shape {shape}, got {got}")


def _mask_or_all(mask: torch.Tensor | None, like: torch.Tensor, name: str) -> torch.Tensor:
    """``mask`` (B, L) checked against ``like`` (B, L), or all True where it is None."""
    if mask is None:
        return torch.ones(like.shape, dtype=torch.bool, device=like.device)
    if tuple(mask.shape) != tuple(like.shape) or mask.dtype != torch.bool:
        raise ValueError(f"expected a bool {name} of shape {tuple(like.shape)}, got "
                         f"{tuple(mask.shape)} {mask.dtype}")
    return mask


class _CodecLM(nn.Module):
    """What both models share: phoneme embeddings, the positions table, the checks."""

    def __init__(self, config: VALLEConfig) -> None:
        super().__init__()
        self.config = config
        self.phoneme_embed = nn.Embedding(config.phoneme_vocab_size, config.d_model)
        table = sinusoids(max(config.max_phonemes, config.max_frames), config.d_model)
        self.register_buffer("positions", table, persistent=False)  # fixed, recomputed
        self.norm = nn.LayerNorm(config.d_model)

    def _embed(self, embedding: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, L, D), scaled by sqrt(D) (their init has std 1 / sqrt(D), fit
        for the tied output layers), plus positions 0 .. L-1: one segment."""
        return embedding * math.sqrt(self.config.d_model) + self.positions[: embedding.shape[1]]

    def _check(self, phonemes: torch.Tensor, frames: int, what: str) -> None:
        _check_codes("phonemes", phonemes, (2,), "(B, P)")
        if phonemes.shape[1] == 0:
            raise ValueError("phonemes must hold at least one phoneme per row")
        if phonemes.shape[1] > self.config.max_phonemes:
            raise ValueError(f"at most max_phonemes={self.config.max_phonemes} phonemes, got "
                             f"{phonemes.shape[1]}")
        if frames > self.config.max_frames:
            raise ValueError(f"{what} is longer than max_frames={self.config.max_frames}: "
                             f"{frames} positions")


class VALLEAR(_CodecLM):
    """VALL-E's autoregressive model over the first codebook. The sequence is
    ``[phonemes (P) ; prompt codes (Tp) ; <bos> target codes (1 + T)]``; every position sees
    all the phonemes and the positions before it (a prefix-LM mask), padding never. Code ids
    are ``0 .. K-1``, ``eos = K``, ``bos = K + 1``; the output layer (K + 1 classes: codes and
    ``<eos>``) is the code embedding, transposed. Built in §41.2."""

    def __init__(self, config: VALLEConfig) -> None:
        super().__init__(config)
        d, k = config.d_model, config.codebook_size
        self.eos, self.bos = k, k + 1
        self.code_embed = nn.Embedding(k + 2, d)
        self.layers = nn.ModuleList(VALLEBlock(d, config.num_heads, config.ffn_dim)
                                    for _ in range(config.num_layers))
        for emb in (self.phoneme_embed, self.code_embed):
            nn.init.normal_(emb.weight, std=d ** -0.5)

    @staticmethod
    def _mask(key_valid: torch.Tensor, queries: int, prefix: int) -> torch.Tensor:
        """The attention mask (B, 1, L, S) of the last ``queries`` of S positions: causal,
        except that the first ``prefix`` (the phonemes) are seen by all; padding is never
        seen, though each position sees itself (a padded row gets no NaN)."""
        s = key_valid.shape[1]
        rows = torch.arange(s - queries, s, device=key_valid.device)[:, None]
        cols = torch.arange(s, device=key_valid.device)[None]
        allowed = ((cols <= rows) | (cols < prefix))[None] & key_valid[:, None]
        return (allowed | (cols == rows)[None])[:, None]

    def _run(self, x: torch.Tensor, mask: torch.Tensor, cache: list[BlockCache] | None
             ) -> tuple[torch.Tensor, list[BlockCache]]:
        new = []
        for i, layer in enumerate(self.layers):
            x, block = layer(x, mask, cache=None if cache is None else cache[i])
            new.append(block)
        logits = self.norm(x) @ self.code_embed.weight[: self.eos + 1].t()  # (B, L, K + 1)
        return logits, new

    def _prefix(self, phonemes: torch.Tensor, prompt: torch.Tensor,
                phoneme_mask: torch.Tensor | None, prompt_mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded phonemes and prompt (B, P + Tp, D) and which of them are real."""
        if prompt.dim() == 3:  # all codebooks given: the AR model reads the first
            prompt = prompt[:, 0]
        if prompt.shape[0] != phonemes.shape[0]:
            raise ValueError(f"phonemes and prompt hold different batch sizes: "
                             f"{phonemes.shape[0]} and {prompt.shape[0]}")
        x = torch.cat([self._embed(self.phoneme_embed(phonemes)),
                       self._embed(self.code_embed(prompt))], dim=1)
        valid = torch.cat([_mask_or_all(phoneme_mask, phonemes, "phoneme_mask"),
                           _mask_or_all(prompt_mask, prompt, "prompt_mask")], dim=1)
        return x, valid

    def forward(self, phonemes: torch.Tensor, prompt: torch.Tensor, target: torch.Tensor,
                phoneme_mask: torch.Tensor | None = None, prompt_mask: torch.Tensor | None = None,
                target_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits (B, T + 1, K + 1): position t predicts target code t from the
        phonemes (B, P), the prompt (B, Tp) (or (B, n, Tp)) and target codes before t; the last
        real position predicts ``<eos>``. ``target`` is (B, T) or (B, n, T); masks are True
        on real positions."""
        _check_codes("prompt", prompt, (2, 3), "(B, Tp) or (B, n, Tp)")
        _check_codes("target", target, (2, 3), "(B, T) or (B, n, T)")
        target = target[:, 0] if target.dim() == 3 else target
        self._check(phonemes, max(prompt.shape[-1], target.shape[-1] + 1), "prompt or target")
        x, valid = self._prefix(phonemes, prompt, phoneme_mask, prompt_mask)
        bos = torch.full_like(target[:, :1], self.bos)
        x = torch.cat([x, self._embed(self.code_embed(torch.cat([bos, target], 1)))], dim=1)
        tmask = _mask_or_all(target_mask, target, "target_mask")
        valid = torch.cat([valid, torch.ones_like(tmask[:, :1]), tmask], dim=1)
        logits, _ = self._run(x, self._mask(valid, valid.shape[1], phonemes.shape[1]), None)
        return logits[:, -(target.shape[1] + 1):]

    def loss(self, phonemes: torch.Tensor, prompt: torch.Tensor, target: torch.Tensor,
             phoneme_mask: torch.Tensor | None = None, prompt_mask: torch.Tensor | None = None,
             target_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of the target's first-codebook codes and ``<eos>`` after the last,
        averaged over them (padding skipped). Built in §41.2."""
        logits = self(phonemes, prompt, target, phoneme_mask, prompt_mask, target_mask)
        target = target[:, 0] if target.dim() == 3 else target
        tmask = _mask_or_all(target_mask, target, "target_mask")
        lengths = tmask.sum(1, keepdim=True)  # (B, 1)
        steps = torch.arange(target.shape[1] + 1, device=target.device)[None]  # (1, T + 1)
        labels = torch.cat([target, torch.full_like(target[:, :1], self.eos)], dim=1)
        labels = torch.where(steps == lengths, self.eos, labels).masked_fill(steps > lengths, -100)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    @torch.no_grad()
    def generate(self, phonemes: torch.Tensor, prompt_codes: torch.Tensor, max_frames: int,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None, phoneme_mask: torch.Tensor | None = None,
                 prompt_mask: torch.Tensor | None = None, min_frames: int = 0) -> torch.Tensor:
        """First-codebook codes (B, T) continuing the prompt, T <= ``max_frames``, one frame
        at a time with a key/value cache, each drawn by :func:`sample_logits` (``temperature``
        0: greedy). ``<eos>`` is forbidden before ``min_frames``. A row that has written
        ``<eos>`` is padded with ``eos`` (= K) while the others go on; it is not in the output."""
        if not 0 <= min_frames <= max_frames < self.config.max_frames:
            raise ValueError(f"expected 0 <= min_frames <= max_frames < max_frames of the config "
                             f"({self.config.max_frames}), got min_frames={min_frames}, "
                             f"max_frames={max_frames}")
        _check_codes("prompt_codes", prompt_codes, (2, 3), "(B, Tp) or (B, n, Tp)")
        self._check(phonemes, prompt_codes.shape[-1], "prompt_codes")
        x, valid = self._prefix(phonemes, prompt_codes, phoneme_mask, prompt_mask)
        bos = torch.full_like(phonemes[:, :1], self.bos)
        x = torch.cat([x, self._embed(self.code_embed(bos))], dim=1)
        valid = torch.cat([valid, torch.ones_like(valid[:, :1])], dim=1)
        logits, cache = self._run(x, self._mask(valid, valid.shape[1], phonemes.shape[1]), None)
        done = torch.zeros_like(valid[:, 0])
        frames: list[torch.Tensor] = []
        for t in range(max_frames):
            last = logits[:, -1]
            if t < min_frames:  # too early to stop
                last = last.clone()
                last[:, self.eos] = -math.inf
            code = sample_logits(last, temperature, top_k, top_p, generator).masked_fill(
                done, self.eos)
            done = done | (code == self.eos)
            if bool(done.all()):
                break
            frames.append(code)
            if t + 1 == max_frames:
                break
            valid = torch.cat([valid, torch.ones_like(valid[:, :1])], dim=1)
            x = self.code_embed(code)[:, None] * math.sqrt(self.config.d_model) \
                + self.positions[t + 1]  # position t + 1 of the <bos> segment
            logits, cache = self._run(x, self._mask(valid, 1, phonemes.shape[1]), cache)
        if not frames:
            return phonemes.new_zeros(phonemes.shape[0], 0)
        return torch.stack(frames, dim=1)


class VALLENAR(_CodecLM):
    """VALL-E's non-autoregressive model: predicts codebook k (1 .. n-1) of every target frame
    at once from ``[phonemes ; prompt (all n codebooks, embeddings summed) ; target (codebooks
    < k, summed)]``, attention in both directions (padding masked). Each codebook has its own
    embedding table; the stage k enters every block through :class:`AdaptiveLayerNorm`; the
    output layer for k is codebook k's embedding, transposed. Built in §41.2."""

    def __init__(self, config: VALLEConfig) -> None:
        if config.num_quantizers < 2:
            raise ValueError(f"the NAR model needs num_quantizers >= 2, got "
                             f"{config.num_quantizers}")
        super().__init__(config)
        d, n, k = config.d_model, config.num_quantizers, config.codebook_size
        self.code_embed = nn.Embedding(n * k, d)  # codebook j's code c is row j * K + c
        self.stage_embed = nn.Embedding(n - 1, d)  # stage k is row k - 1
        self.layers = nn.ModuleList(VALLEBlock(d, config.num_heads, config.ffn_dim, True)
                                    for _ in range(config.num_layers))
        for emb in (self.phoneme_embed, self.code_embed):
            nn.init.normal_(emb.weight, std=d ** -0.5)

    def _codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, n, T) -> each codebook's embedding (B, n, T, D)."""
        n, k = self.config.num_quantizers, self.config.codebook_size
        return self.code_embed(codes + torch.arange(n, device=codes.device)[:, None] * k)

    def forward(self, phonemes: torch.Tensor, prompt: torch.Tensor, target: torch.Tensor,
                codebook: int | torch.Tensor, phoneme_mask: torch.Tensor | None = None,
                prompt_mask: torch.Tensor | None = None, target_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Logits (B, T, K) of codebook ``codebook`` (an int, or one per row (B,), in
        1 .. n-1) of the target, from the phonemes (B, P), the prompt (B, n, Tp) and the
        target's codebooks below it (``target`` (B, n, T); the others are not read)."""
        n = self.config.num_quantizers
        for name, codes in (("prompt", prompt), ("target", target)):
            _check_codes(name, codes, (3,), f"(B, {n}, frames)")
            if codes.shape[1] != n:
                raise ValueError(f"expected {name} with all {n} codebooks, got {codes.shape[1]}")
        self._check(phonemes, max(prompt.shape[-1], target.shape[-1]), "prompt or target")
        b = phonemes.shape[0]
        if not isinstance(codebook, torch.Tensor):
            codebook = int(codebook)
            if not 1 <= codebook < n:
                raise ValueError(f"codebook must be from 1 to {n - 1}, got {codebook}")
            codebook = torch.full((b,), codebook, device=phonemes.device)
        tmask = _mask_or_all(target_mask, target[:, 0], "target_mask")
        target = target.masked_fill(~tmask[:, None], 0)  # padding may hold any id
        below = (torch.arange(n, device=target.device)[None] < codebook[:, None])  # (B, n)
        x = torch.cat([self._embed(self.phoneme_embed(phonemes)),
                       self._embed(self._codes(prompt).sum(1)),
                       self._embed((self._codes(target) * below[..., None, None]).sum(1))], 1)
        valid = torch.cat([_mask_or_all(phoneme_mask, phonemes, "phoneme_mask"),
                           _mask_or_all(prompt_mask, prompt[:, 0], "prompt_mask"), tmask], 1)
        mask = valid[:, None, None] | torch.eye(valid.shape[1], dtype=torch.bool,
                                                  device=valid.device)  # (B, 1, L, L)
        stage = self.stage_embed(codebook - 1)  # (B, D)
        for layer in self.layers:
            x, _ = layer(x, mask, stage)
        hidden = self.norm(x[:, -target.shape[-1]:])  # the target's positions (B, T, D)
        tables = self.code_embed.weight.view(n, self.config.codebook_size, -1)[codebook]
        return torch.einsum("btd,bkd->btk", hidden, tables)  # (B, T, K)

    def loss(self, phonemes: torch.Tensor, prompt: torch.Tensor, target: torch.Tensor,
             phoneme_mask: torch.Tensor | None = None, prompt_mask: torch.Tensor | None = None,
             target_mask: torch.Tensor | None = None, codebook: int | torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Cross-entropy of one codebook of the target per row, drawn uniformly from
        1 .. n-1 (with ``generator``, on its device) unless ``codebook`` is given; padding
        is skipped. Built in §41.2."""
        if codebook is None:
            where = generator.device if generator is not None else phonemes.device
            codebook = torch.randint(1, self.config.num_quantizers, (phonemes.shape[0],),
                                     generator=generator, device=where).to(phonemes.device)
        logits = self(phonemes, prompt, target, codebook, phoneme_mask, prompt_mask, target_mask)
        rows = torch.arange(target.shape[0], device=target.device)
        if not isinstance(codebook, torch.Tensor):
            codebook = torch.full_like(rows, int(codebook))
        labels = target[rows, codebook]  # (B, T)
        if target_mask is not None:
            labels = labels.masked_fill(~target_mask, -100)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    @torch.no_grad()
    def generate(self, phonemes: torch.Tensor, prompt_codes: torch.Tensor,
                 first_codes: torch.Tensor, phoneme_mask: torch.Tensor | None = None,
                 prompt_mask: torch.Tensor | None = None, target_mask: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """All codes (B, n, T): ``first_codes`` (B, T) from the AR model, then codebooks
        1 .. n-1 in turn, each the argmax of one forward pass."""
        _check_codes("first_codes", first_codes, (2,), "(B, T)")
        n = self.config.num_quantizers
        codes = first_codes.new_zeros(first_codes.shape[0], n, first_codes.shape[1])
        codes[:, 0] = first_codes
        for k in range(1, n):
            logits = self(phonemes, prompt_codes, codes, k, phoneme_mask, prompt_mask, target_mask)
            codes[:, k] = logits.argmax(-1)
        return codes


def sample_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """One token per row of ``logits`` (B, V): the argmax at ``temperature`` 0, else a draw
    from softmax(logits / temperature) restricted to the ``top_k`` most likely tokens and to the
    smallest set whose probability reaches ``top_p`` (nucleus sampling). The draw happens on
    ``generator``'s device; the result is on the logits'. Built in §41.2."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or a positive int, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be None or in (0, 1], got {top_p}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None:
        ordered, index = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        before = probs.cumsum(-1) - probs  # the mass of the tokens ahead of each
        ordered = ordered.masked_fill(before >= top_p, -math.inf)
        logits = torch.full_like(logits, -math.inf).scatter(-1, index, ordered)
    probs = logits.softmax(-1)
    where = generator.device if generator is not None else probs.device
    draw = torch.multinomial(probs.to(where), 1, generator=generator)[:, 0]
    return draw.to(logits.device)


@torch.no_grad()
def synthesize(ar: VALLEAR, nar: VALLENAR, phonemes, prompt_codes, max_frames: int = 500,
               temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None, min_frames: int = 1) -> torch.Tensor:
    """Speak ``phonemes`` (P,) in the voice of ``prompt_codes`` (n, Tp) or (1, n, Tp): the AR
    model writes the first codebook (sampled, see :meth:`VALLEAR.generate`), the NAR model
    the rest. Returns codes (1, n, T) on the models' device, for ``Codec.decode``.
    Built in §41.2."""
    if ar.config.num_quantizers != nar.config.num_quantizers \
            or ar.config.codebook_size != nar.config.codebook_size:
        raise ValueError("ar and nar must be configured for the same codec (num_quantizers, "
                         "codebook_size)")
    device = nar.positions.device
    phonemes = torch.as_tensor(phonemes, dtype=torch.long, device=device).reshape(1, -1)
    prompt = torch.as_tensor(prompt_codes, dtype=torch.long, device=device)
    prompt = prompt[None] if prompt.dim() == 2 else prompt
    if prompt.dim() != 3 or prompt.shape[:2] != (1, nar.config.num_quantizers):
        raise ValueError(f"expected prompt_codes of shape ({nar.config.num_quantizers}, Tp) or "
                         f"(1, {nar.config.num_quantizers}, Tp), got {tuple(prompt.shape)}")
    first = ar.generate(phonemes, prompt, max_frames, temperature, top_k, top_p, generator,
                        min_frames=min_frames)
    return nar.generate(phonemes, prompt, first)
