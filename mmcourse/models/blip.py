"""A small BLIP: one text transformer trained with BLIP's three losses on frozen image tokens.

BLIP (Li et al. 2022) pre-trains one model with three objectives, each with its own *mode* of
the same text transformer:

- **ITC**, image-text contrastive: the unimodal text encoder (bidirectional self-attention, no
  image) read at its first token, against the image's [CLS] token. BLIP follows ALBEF here: a
  momentum encoder supplies soft targets. Ours simplifies it to the symmetric InfoNCE of CLIP
  with one-hot targets (:func:`mmcourse.losses.contrastive_loss`).
- **ITM**, image-text matching: the image-grounded encoder (the same layers with cross-attention
  to the image tokens, first token ``[ENC]``) classifies a pair as matched or not; negatives are
  mined from the ITC similarities (:func:`mine_negatives`), hard ones more often.
- **LM**, language modelling: the image-grounded decoder (causal self-attention, first token
  ``[DEC]``) writes the caption.

As in BLIP, encoder and decoder share everything — embeddings, cross-attention, feed-forward
layers — except the self-attention. Unlike BLIP the layers are pre-norm, and the image encoder
is not trained: the model reads the tokens of a frozen image tower (e.g. the §40.1 CLIP's
``vision_features``) through a trainable LayerNorm. Built in §40.7.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.losses import contrastive_loss
from mmcourse.models.fusion import CrossAttention
from mmcourse.nn import MLP, MultiHeadAttention

LOSSES: tuple[str, ...] = ("itc", "itm", "lm")


@dataclass
class BLIPConfig:
    """The small BLIP's sizes. ``vocab_size`` counts the caption tokenizer's ids (``pad_id`` 0,
    a ``<bos>`` that opens every text and is the ITC encoder's [CLS], an ``<eos>``); the model
    adds two ids after them, ``[ENC]`` and ``[DEC]``, which replace ``<bos>`` in the ITM and LM
    modes. ``image_dim`` is the width of the frozen image tokens, whose first token is [CLS].
    Built in §40.7."""

    vocab_size: int
    eos_token_id: int
    image_dim: int = 64
    dim: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_dim: int = 128
    max_length: int = 32
    embed_dim: int = 64
    temperature: float = 0.07

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"dim must be divisible by num_heads, got dim={self.dim} and "
                             f"num_heads={self.num_heads}")
        if not 0 < self.eos_token_id < self.vocab_size:
            raise ValueError(f"eos_token_id must be an id of the vocabulary (< {self.vocab_size}),"
                             f" got {self.eos_token_id}")

    @property
    def enc_token_id(self) -> int:
        return self.vocab_size

    @property
    def dec_token_id(self) -> int:
        return self.vocab_size + 1


class BLIPTextLayer(nn.Module):
    """One layer of BLIP's text transformer in its three modes (pre-norm): self-attention —
    ``self_attn`` for the encoders, ``decoder_self_attn`` (causal) for the decoder, the only
    weights the modes do not share — then cross-attention to the image tokens when there is an
    image, then the feed-forward MLP. (B, L, D) -> (B, L, D). Built in §40.7."""

    def __init__(self, config: BLIPConfig) -> None:
        super().__init__()
        dim = config.dim
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = MultiHeadAttention(dim, config.num_heads)
        self.norm_decoder_self = nn.LayerNorm(dim)
        self.decoder_self_attn = MultiHeadAttention(dim, config.num_heads)
        self.norm_cross = nn.LayerNorm(dim)
        self.cross_attn = CrossAttention(dim, config.num_heads, config.image_dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, config.mlp_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, image: torch.Tensor | None = None,
                decoder: bool = False) -> torch.Tensor:
        """``mask`` is the self-attention's bool mask (True: may attend), broadcastable to
        (B, heads, L, L); ``image`` (B, M, image_dim) or None for the unimodal encoder."""
        norm, attn = ((self.norm_decoder_self, self.decoder_self_attn) if decoder
                      else (self.norm_self, self.self_attn))
        x = x + attn(norm(x), mask)[0]
        if image is not None:
            x = x + self.cross_attn(self.norm_cross(x), image)[0]
        return x + self.mlp(self.norm_mlp(x))


def pool_image_tokens(hidden: torch.Tensor, size: int = 4) -> torch.Tensor:
    """A ViT's tokens with fewer patches: [CLS] kept, the square patch grid average-pooled to
    ``size`` x ``size``. (B, 1 + N*N, D) -> (B, 1 + size*size, D), e.g. the §40.1 CLIP's
    (B, 65, 64) -> (B, 17, 64). Built in §40.7."""
    n = round((hidden.shape[1] - 1) ** 0.5)
    if hidden.dim() != 3 or n * n != hidden.shape[1] - 1 or n % size:
        raise ValueError(f"expected tokens (B, 1 + N*N, D) with N divisible by {size}, got "
                         f"{tuple(hidden.shape)}")
    grid = hidden[:, 1:].reshape(len(hidden), n, n, -1).permute(0, 3, 1, 2)  # (B, D, N, N)
    pooled = F.avg_pool2d(grid, n // size).flatten(2).transpose(1, 2)  # (B, size*size, D)
    return torch.cat([hidden[:, :1], pooled], dim=1)


def mine_negatives(similarity: torch.Tensor, exclude: torch.Tensor | None = None,
                   hard: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """One negative per row of ``similarity`` (B, B) (query i x candidate j; the positive is j = i),
    drawn with probability ``softmax(similarity[i])`` over the other candidates when ``hard``
    (BLIP's and ALBEF's hard negatives: the more similar, the likelier) or uniformly when not.
    ``exclude`` (B, B) bool marks further candidates that must not be drawn (e.g. a text equal to
    the positive's, which is no negative at all). Returns (B,) candidate indices, on the device of
    ``similarity``; the draw itself is made on the CPU (``generator`` is a CPU generator).
    Built in §40.7."""
    if similarity.dim() != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"expected a square similarity matrix (B, B), got "
                         f"{tuple(similarity.shape)}")
    banned = torch.eye(len(similarity), dtype=torch.bool, device=similarity.device)
    if exclude is not None:
        banned = banned | exclude
    if banned.all(dim=1).any():
        raise ValueError("a row has no candidate left to draw a negative from")
    logits = similarity.float() if hard else torch.zeros_like(similarity, dtype=torch.float)
    weights = logits.masked_fill(banned, float("-inf")).softmax(dim=1)  # (B, B)
    # drawn on the CPU, where ``generator`` lives: the same negatives whatever the device
    return torch.multinomial(weights.cpu(), 1, generator=generator).squeeze(1).to(weights.device)


class BLIP(nn.Module):
    """BLIP's three modes on one text transformer, reading frozen image tokens (B, M, image_dim).
    Built in §40.7.

    - ``image_embed(image)`` / ``text_embed(ids, mask)``: the ITC embeddings (B, embed_dim),
      L2-normalised;
    - ``itm_logits(image, ids, mask)``: (B, 2) logits of (no match, match);
    - ``lm_logits(image, ids, mask)``: (B, L, vocab_size) next-token logits;
    - ``losses(image, ids, mask, use=..., hard_negatives=...)``: the three losses of a batch;
    - ``generate(image, bos_id, max_length)``: greedy captions.
    Texts are ``<bos> words <eos>`` padded with 0, as ``CaptionTokenizer`` writes them.
    """

    def __init__(self, config: BLIPConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.dim
        self.token_embed = nn.Embedding(config.vocab_size + 2, dim)  # + [ENC], [DEC]
        self.pos_embed = nn.Embedding(config.max_length, dim)
        self.layers = nn.ModuleList(BLIPTextLayer(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(dim)
        self.image_norm = nn.LayerNorm(config.image_dim)
        self.image_proj = nn.Linear(config.image_dim, config.embed_dim)
        self.text_proj = nn.Linear(dim, config.embed_dim)
        self.itm_head = nn.Linear(dim, 2)
        self.lm_head = nn.Linear(dim, config.vocab_size)
        self.log_scale = nn.Parameter(torch.tensor(1 / config.temperature).log())
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

    def _image(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 3 or image.shape[-1] != self.config.image_dim:
            raise ValueError(f"expected image tokens of shape (B, M, {self.config.image_dim}), "
                             f"got {tuple(image.shape)}")
        return self.image_norm(image)

    def _text(self, ids: torch.Tensor, mask: torch.Tensor, image: torch.Tensor | None,
              first: int | None, decoder: bool) -> torch.Tensor:
        """Run the text transformer in one mode: (B, L) -> (B, L, D). ``first`` replaces the
        first token (``[ENC]``/``[DEC]``); the decoder's self-attention is causal."""
        if ids.dim() != 2 or ids.shape != mask.shape or ids.shape[1] > self.config.max_length:
            raise ValueError(f"expected ids and mask of one shape (B, L), L <= "
                             f"{self.config.max_length}, got {tuple(ids.shape)} and "
                             f"{tuple(mask.shape)}")
        if first is not None:
            ids = torch.cat([torch.full_like(ids[:, :1], first), ids[:, 1:]], dim=1)
        length = ids.shape[1]
        x = self.token_embed(ids) + self.pos_embed(torch.arange(length, device=ids.device))
        allowed = mask.bool()[:, None, None, :]  # (B, 1, 1, L): no attention to padding
        if decoder:
            causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).tril()
            allowed = allowed & causal
        for layer in self.layers:
            x = layer(x, allowed, image, decoder)
        return self.norm(x)

    def image_embed(self, image: torch.Tensor) -> torch.Tensor:
        """ITC image embeddings from the [CLS] token: (B, M, image_dim) -> (B, embed_dim)."""
        return F.normalize(self.image_proj(self._image(image)[:, 0]), dim=-1)

    def text_embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ITC text embeddings, the unimodal encoder at ``<bos>``: (B, L) -> (B, embed_dim)."""
        return F.normalize(self.text_proj(self._text(ids, mask, None, None, False)[:, 0]), dim=-1)

    def itm_logits(self, image: torch.Tensor, ids: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
        """Match logits of each image with its text: (B, M, image_dim), (B, L) -> (B, 2)."""
        hidden = self._text(ids, mask, self._image(image), self.config.enc_token_id, False)
        return self.itm_head(hidden[:, 0])

    def lm_logits(self, image: torch.Tensor, ids: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, L, vocab_size): position t predicts token t + 1."""
        hidden = self._text(ids, mask, self._image(image), self.config.dec_token_id, True)
        return self.lm_head(hidden)

    def losses(self, image: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
               use: tuple[str, ...] = LOSSES, hard_negatives: bool = True,
               groups: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The losses named in ``use`` for a batch of B matching pairs; ITM's negatives (one
        image per text and one text per image) are mined from the ITC similarities, hard or
        random, never a text identical to the positive's nor, if ``groups`` (B,) is given, a
        pair of the positive's group (e.g. a scene with the same objects: a caption of one fits
        the other, as BLIP masks pairs of one image id). Returns ``{name: scalar}``."""
        unknown = set(use) - set(LOSSES)
        if unknown or not use:
            raise ValueError(f"expected some of {LOSSES} in use, got {use}")
        if groups is not None and groups.shape != ids.shape[:1]:
            raise ValueError(f"expected groups of shape ({len(ids)},), got {tuple(groups.shape)}")
        out = {}
        u, v = self.image_embed(image), self.text_embed(ids, mask)
        if "itc" in use:
            out["itc"] = contrastive_loss(u, v, self.log_scale.exp())
        if "itm" in use:
            with torch.no_grad():
                similarity = self.log_scale.exp() * u @ v.T  # (B images, B texts)
                banned = (ids[:, None, :] == ids[None, :, :]).all(-1)  # (B, B) same text
                if groups is not None:
                    banned = banned | (groups[:, None] == groups[None, :])
                neg_image = mine_negatives(similarity.T, banned, hard_negatives, generator)
                neg_text = mine_negatives(similarity, banned, hard_negatives, generator)
            images = torch.cat([image, image[neg_image], image])  # (3B, M, image_dim)
            texts = torch.cat([ids, ids, ids[neg_text]])
            masks = torch.cat([mask, mask, mask[neg_text]])
            labels = torch.cat([torch.ones(len(ids)), torch.zeros(2 * len(ids))]).long()
            out["itm"] = F.cross_entropy(self.itm_logits(images, texts, masks),
                                         labels.to(ids.device))
        if "lm" in use:
            logits = self.lm_logits(image, ids, mask)[:, :-1]  # (B, L-1, V)
            targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)  # words and <eos>
            out["lm"] = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                        targets.reshape(-1), ignore_index=-100)
        return out

    @torch.no_grad()
    def generate(self, image: torch.Tensor, bos_id: int, max_length: int = 24) -> torch.Tensor:
        """Greedy captions (B, T) for image tokens (B, M, image_dim): ``<bos>`` (read as
        ``[DEC]``), then the most likely token until ``<eos>``; after it, padding (0)."""
        eos = self.config.eos_token_id
        ids = torch.full((len(image), 1), bos_id, dtype=torch.long, device=image.device)
        done = torch.zeros(len(image), dtype=torch.bool, device=image.device)
        for _ in range(max_length - 1):
            logits = self.lm_logits(image, ids, torch.ones_like(ids))[:, -1]  # (B, V)
            token = logits.argmax(-1).masked_fill(done, 0)
            ids = torch.cat([ids, token[:, None]], dim=1)
            done = done | (token == eos)
            if done.all():
                break
        return ids


def save_blips(path: str | Path, models: dict[str, BLIP], vocab: list[str],
               notes: str = "") -> None:
    """Write several BLIPs (e.g. one per recipe) to one safetensors file: each model's weights
    under ``<name>.``, and as JSON metadata each configuration, the tokenizer's ``vocab`` and
    free-text ``notes``. Built in §40.7."""
    from safetensors.torch import save_file

    state, configs = {}, {}
    for name, model in models.items():
        if not isinstance(model, BLIP) or "." in name:
            raise ValueError(f"expected BLIP models under names without dots, got {name!r}: "
                             f"{type(model).__name__}")
        state |= {f"{name}.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
        configs[name] = asdict(model.config)
    save_file(state, str(path), metadata={"blips": json.dumps(configs),
                                          "vocab": json.dumps(list(vocab)), "notes": notes})


def load_blips(path: str | Path) -> tuple[dict[str, BLIP], dict]:
    """Read what :func:`save_blips` wrote: the models by name, in eval mode, and the metadata
    (``vocab`` and ``notes`` as written). Built in §40.7."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if "blips" not in metadata:
        raise ValueError(f"{path} holds no BLIP models (expected 'blips' in its metadata, got "
                         f"{sorted(metadata)})")
    state, models = load_file(str(path)), {}
    for name, config in json.loads(metadata["blips"]).items():
        models[name] = BLIP(BLIPConfig(**config))
        prefix = f"{name}."
        models[name].load_state_dict({k[len(prefix):]: v for k, v in state.items()
                                      if k.startswith(prefix)})
        models[name].eval()
    return models, {"vocab": json.loads(metadata.get("vocab", "[]")),
                    "notes": metadata.get("notes", "")}
