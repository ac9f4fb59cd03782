"""Encoder-decoder captioners: Show, Attend and Tell, Bottom-Up Top-Down, and their decoding.

Both captioners read a set of image feature vectors and write a caption word by word with LSTMs,
attending to the features at every word:

- **Show, Attend and Tell** (Xu et al. 2015) attends over the cells of a CNN's feature grid
  (:func:`grid_features`) with one LSTM and soft attention, a gate on the context and a deep output
  layer; it is trained with the "doubly stochastic" penalty (:func:`doubly_stochastic_penalty`).
- **Bottom-Up Top-Down** (Anderson et al. 2018) attends over object regions
  (:func:`region_features`, pooled inside boxes) with a top-down attention LSTM and a language
  LSTM.

Both read the features of one small CNN, :class:`GridEncoder`, pretrained to name the object in
each cell of its grid (:func:`cell_labels`). Training is teacher forcing (``model(features, mask,
input_ids)``, :func:`caption_batches`, :func:`captioner_loss`); decoding is greedy
(:func:`greedy_search`) or beam search (:func:`beam_search`, built on :func:`beam_step`), two
functions that take any ``step_fn`` so that later sections decode their own models with them.
:func:`save_captioners` / :func:`load_captioners` keep an encoder and its captioners in one
safetensors file (``data/captioners-shapes.safetensors``, made by
``scripts/make_captioners.py``). Built in §40.2.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: ``step_fn(tokens (B,), state, context) -> (log_probs (B, V), new state)``: one decoding step
StepFn = Callable[[torch.Tensor, tuple, tuple], tuple[torch.Tensor, tuple]]


# ---------------------------------------------------------------------------- the encoder
class GridEncoder(nn.Module):
    """The captioners' image encoder: a small CNN, images (B, 3, S, S) -> a feature map
    (B, width, S/8, S/8) (8x8 cells for 64x64 images): a 4x4 patch convolution, then a 3x3
    convolution of stride 2 and one of stride 1, each with batch norm and ReLU. Its 1x1 head
    names the colour, shape and size of the object covering each cell (0: none), the task it is
    pretrained on (:func:`cell_labels`), as BUTD's detector was trained to name objects and their
    attributes. Built in §40.2."""

    def __init__(self, n_colours: int, n_shapes: int, n_sizes: int = 2, width: int = 64) -> None:
        super().__init__()
        for name, value in (("n_colours", n_colours), ("n_shapes", n_shapes),
                            ("n_sizes", n_sizes), ("width", width)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.config = {"n_colours": n_colours, "n_shapes": n_shapes, "n_sizes": n_sizes,
                       "width": width}
        self.sizes = [1 + n_colours, 1 + n_shapes, 1 + n_sizes]  # each with "none" as class 0
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 4, stride=4), nn.BatchNorm2d(32), nn.ReLU(),  # -> (B, 32, S/4, S/4)
            nn.Conv2d(32, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())  # S/8
        self.head = nn.Conv2d(width, sum(self.sizes), 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) -> feature map (B, width, S/8, S/8)."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else images
            raise ValueError(f"expected images of shape (B, 3, H, W), got {shape}")
        return self.features(images)

    def cell_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The logits of each cell's colour, shape and size: three (B, classes, h, w)."""
        return self.head(self(images)).split(self.sizes, dim=1)

    def pretraining_loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The sum of the three cross-entropies against :func:`cell_labels` (B, 3, h, w)."""
        return sum(F.cross_entropy(logits, labels[:, k])
                   for k, logits in enumerate(self.cell_logits(images)))


def cell_labels(scenes: Sequence, colours: Sequence[str], shapes: Sequence[str],
                grid: int = 8, min_cover: float = 0.2) -> torch.Tensor:
    """What :class:`GridEncoder` is pretrained to name: for each cell of a ``grid`` x ``grid``
    grid over each scene, the colour, shape and size (ids from 1, in the order of ``colours``,
    ``shapes`` and ("small", "large")) of the object whose box covers most of the cell, or 0 if
    no box covers at least ``min_cover`` of it. Scenes are ShapesWorld scenes (``.image``,
    ``.objects``). Returns (S, 3, grid, grid). Built in §40.2."""
    if not scenes:
        raise ValueError("expected at least one scene, got none")
    size = scenes[0].image.shape[0]
    labels = torch.zeros(len(scenes), 3, grid, grid, dtype=torch.long)
    for n, scene in enumerate(scenes):
        if not scene.objects:
            continue
        boxes = torch.tensor([o.box for o in scene.objects], dtype=torch.float32)  # (K, 4)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # (K,)
        cover = box_weights(boxes, (grid, grid), size) * (areas / (size / grid) ** 2)[:, None, None]
        best, owner = cover.max(0)  # (grid, grid): the share of each cell covered, and by whom
        attributes = torch.tensor([[1 + list(colours).index(o.color),
                                    1 + list(shapes).index(o.shape),
                                    1 + ("small", "large").index(o.size)] for o in scene.objects])
        labels[n] = attributes[owner].permute(2, 0, 1) * (best >= min_cover)  # (3, grid, grid)
    return labels


# ---------------------------------------------------------------------------- image features
def _check_feature_map(feature_map: torch.Tensor) -> None:
    if not isinstance(feature_map, torch.Tensor) or feature_map.dim() != 4:
        shape = tuple(feature_map.shape) if isinstance(feature_map, torch.Tensor) else feature_map
        raise ValueError(f"expected a feature map of shape (B, C, h, w), got {shape}")


def _location(cx: torch.Tensor, cy: torch.Tensor, w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return torch.stack([cx, cy, w, h], dim=-1)  # (...,) x 4 -> (..., 4)


def grid_features(feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Show, Attend and Tell's annotation vectors: one per cell of a CNN feature map, each with the
    cell's location ``(cx, cy, w, h)`` as fractions of the image appended (so that a decoder knows
    *where* it attends). Returns features (B, h*w, C + 4), cells in row-major order, and a mask
    (B, h*w), all True. Built in §40.2."""
    _check_feature_map(feature_map)
    B, C, h, w = feature_map.shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")  # (h, w) each
    loc = _location((xs.flatten() + 0.5) / w, (ys.flatten() + 0.5) / h,
                    torch.full((h * w,), 1 / w), torch.full((h * w,), 1 / h))  # (h*w, 4)
    cells = feature_map.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, h*w, C)
    loc = loc.to(cells).expand(B, -1, -1)  # (B, h*w, 4)
    return torch.cat([cells, loc], dim=-1), torch.ones(B, h * w, dtype=torch.bool,
                                                        device=feature_map.device)


def box_weights(boxes: torch.Tensor, grid: tuple[int, int], image_size: int) -> torch.Tensor:
    """For each box ``(x0, y0, x1, y1)`` (pixels, end-exclusive), the share of its area that falls
    in each cell of an ``(h, w)`` grid over a square image of side ``image_size``: boxes (R, 4) ->
    weights (R, h, w), each summing to 1. Averaging a feature map with these weights is RoI
    average pooling. Built in §40.2."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"expected boxes of shape (R, 4), got {tuple(boxes.shape)}")
    if (boxes[:, 2:] <= boxes[:, :2]).any() or (boxes < 0).any() or (boxes > image_size).any():
        raise ValueError(f"expected boxes (x0, y0, x1, y1) with 0 <= x0 < x1 <= {image_size} and "
                         f"0 <= y0 < y1 <= {image_size}, got {boxes.tolist()}")
    h, w = grid

    def overlap(lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
        edges = torch.arange(n + 1, dtype=torch.float32) * (image_size / n)  # (n + 1,)
        inside = (torch.minimum(hi[:, None], edges[None, 1:])
                  - torch.maximum(lo[:, None], edges[None, :-1])).clamp_min(0)  # (R, n)
        return inside / (hi - lo)[:, None]

    wy, wx = overlap(boxes[:, 1], boxes[:, 3], h), overlap(boxes[:, 0], boxes[:, 2], w)
    return wy[:, :, None] * wx[:, None, :]  # (R, h, 1) * (R, 1, w) -> (R, h, w)


def region_features(feature_map: torch.Tensor, boxes: Sequence, image_size: int,
                    whole_image: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Bottom-Up Top-Down's region vectors from a CNN feature map and each image's boxes: the
    feature map averaged inside each box (:func:`box_weights`), with the box's location
    ``(cx, cy, w, h)`` as fractions of the image appended; with ``whole_image`` the first region
    is the whole image. ``boxes`` holds one (R_b, 4) array per image (R_b may differ).
    Returns features (B, R, C + 4), padded with zeros to the most regions, and a mask (B, R) that
    is False on padding. Built in §40.2."""
    _check_feature_map(feature_map)
    B, C, h, w = feature_map.shape
    if len(boxes) != B:
        raise ValueError(f"expected one array of boxes per image ({B}), got {len(boxes)}")
    full = torch.tensor([[0, 0, image_size, image_size]], dtype=torch.float32)
    per_image = [torch.as_tensor(np.asarray(b), dtype=torch.float32).reshape(-1, 4) for b in boxes]
    if whole_image:
        per_image = [torch.cat([full, b]) for b in per_image]
    R = max(len(b) for b in per_image)
    if R == 0:
        raise ValueError("expected at least one box (or whole_image=True), got none")
    counts = torch.tensor([len(b) for b in per_image])  # (B,)
    mask = (torch.arange(R)[None] < counts[:, None]).to(feature_map.device)  # (B, R): real ones
    every = torch.cat(per_image)  # (sum R_b, 4): all boxes, image by image
    weights = feature_map.new_zeros(B, R, h * w)
    weights[mask] = box_weights(every, (h, w), image_size).flatten(1).to(feature_map)
    pooled = weights @ feature_map.flatten(2).transpose(1, 2)  # (B, R, hw) @ (B, hw, C)
    loc = feature_map.new_zeros(B, R, 4)
    loc[mask] = _location((every[:, 0] + every[:, 2]) / 2, (every[:, 1] + every[:, 3]) / 2,
                          every[:, 2] - every[:, 0], every[:, 3] - every[:, 1]).to(loc) / image_size
    return torch.cat([pooled, loc], dim=-1), mask  # (B, R, C + 4), (B, R)


# ---------------------------------------------------------------------------- configuration
@dataclass
class CaptionerConfig:
    """Hyper-parameters shared by the two captioners. Built in §40.2.

    - ``vocab_size``; ``pad_id``, ``bos_id``, ``eos_id``: the special tokens' ids.
    - ``feature_dim``: the size of each image feature vector (grid cell or region).
    - ``embed_dim``: word embeddings; ``hidden_dim``: each LSTM's state; ``attention_dim``: the
      hidden layer of the attention MLP; ``dropout``: before the output layer.
    """

    vocab_size: int
    feature_dim: int
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    embed_dim: int = 64
    hidden_dim: int = 128
    attention_dim: int = 64
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "feature_dim", "embed_dim", "hidden_dim", "attention_dim"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        ids = {"pad_id": self.pad_id, "bos_id": self.bos_id, "eos_id": self.eos_id}
        for name, value in ids.items():
            if not 0 <= value < self.vocab_size:
                raise ValueError(f"{name} must be a token id in [0, {self.vocab_size}), "
                                 f"got {value}")
        if len(set(ids.values())) != 3:
            raise ValueError(f"pad_id, bos_id and eos_id must differ, got {ids}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ShowAttendTellConfig(CaptionerConfig):
    """Show, Attend and Tell's hyper-parameters (:class:`CaptionerConfig`). Built in §40.2."""


@dataclass
class BottomUpTopDownConfig(CaptionerConfig):
    """Bottom-Up Top-Down's hyper-parameters (:class:`CaptionerConfig`; ``hidden_dim`` is the
    size of both LSTMs). Built in §40.2."""


@dataclass
class CaptionerOutput:
    """What a captioner's teacher-forced ``forward`` returns. Built in §40.2.

    - ``logits``: (B, T, V), the scores of token ``t + 1`` given tokens ``0..t`` and the image.
    - ``alphas``: (B, T, N), the attention over the N features at each of the T steps.

    Both are zero at the steps after a caption's ``<eos>`` (padding), which are not computed.
    """

    logits: torch.Tensor
    alphas: torch.Tensor


# ---------------------------------------------------------------------------- soft attention
class SoftAttention(nn.Module):
    """Additive (Bahdanau) attention of a query over a set of features:
    ``e_i = w^T tanh(W_f f_i + W_q q)``, ``alpha = softmax(e)`` over the unmasked features,
    context ``sum_i alpha_i f_i``. Built in §40.2."""

    def __init__(self, feature_dim: int, query_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.feature_proj = nn.Linear(feature_dim, attention_dim)
        self.query_proj = nn.Linear(query_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1)

    def forward(self, projected: torch.Tensor, features: torch.Tensor, mask: torch.Tensor,
                query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``projected`` = ``feature_proj(features)`` (B, N, A), computed once per image;
        features (B, N, F); mask (B, N); query (B, Q) -> context (B, F), alpha (B, N)."""
        e = self.score(torch.tanh(projected + self.query_proj(query)[:, None]))  # (B, N, 1)
        e = e.squeeze(-1)  # (B, N)
        alpha = e.masked_fill(~mask, float("-inf")).softmax(dim=-1)  # (B, N)
        return torch.einsum("bn,bnf->bf", alpha, features), alpha  # (B, F), (B, N)


# ---------------------------------------------------------------------------- the captioners
class Captioner(nn.Module):
    """What both captioners share: teacher-forced ``forward`` and ``generate``. A subclass
    defines ``start(features, mask) -> (state, context)`` and ``step(tokens, state, context) ->
    (logits, state, alpha)``. Built in §40.2."""

    config: CaptionerConfig

    def _check_features(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        F_ = self.config.feature_dim
        if (not isinstance(features, torch.Tensor) or features.dim() != 3
                or features.shape[-1] != F_):
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else features
            raise ValueError(f"expected features of shape (B, N, {F_}), got {shape}")
        if mask is None:
            return torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        if mask.shape != features.shape[:2] or mask.dtype != torch.bool:
            raise ValueError(f"expected a bool mask of shape {tuple(features.shape[:2])}, got "
                             f"{mask.dtype} {tuple(mask.shape)}")
        if not mask.any(-1).all():
            raise ValueError("every image needs at least one unmasked feature")
        return mask

    def start(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[tuple, tuple]:
        raise NotImplementedError

    def step(self, tokens: torch.Tensor, state: tuple, context: tuple
             ) -> tuple[torch.Tensor, tuple, torch.Tensor]:
        raise NotImplementedError

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None,
                input_ids: torch.Tensor) -> CaptionerOutput:
        """Teacher forcing: feed the true tokens ``input_ids[:, :-1]`` (B, L) (``<bos> words
        <eos>`` then padding) and score each next token. Features (B, N, F), mask (B, N) ->
        logits (B, L - 1, V), alphas (B, L - 1, N)."""
        mask = self._check_features(features, mask)
        if (input_ids.dim() != 2 or input_ids.shape[0] != features.shape[0]
                or input_ids.shape[1] < 2):
            raise ValueError(f"expected input_ids of shape ({features.shape[0]}, L) with L >= 2, "
                             f"got {tuple(input_ids.shape)}")
        # sort by length, longest first, so that step t runs only the rows still inside their
        # caption (the first `active` rows): no work on padding
        lengths = (input_ids != self.config.pad_id).sum(1) - 1  # (B,) steps each caption needs
        order = lengths.argsort(descending=True, stable=True)
        features, mask, input_ids = features[order], mask[order], input_ids[order]
        state, context = self.start(features, mask)
        B, logits, alphas = len(order), [], []
        for t in range(input_ids.shape[1] - 1):
            active = int((lengths[order] > t).sum())
            if active == 0:
                break
            state = tuple(s[:active] for s in state)
            step_logits, state, alpha = self.step(input_ids[:active, t], state,
                                                  tuple(c[:active] for c in context))
            logits.append(F.pad(step_logits, (0, 0, 0, B - active)))  # zeros for ended rows
            alphas.append(F.pad(alpha, (0, 0, 0, B - active)))
        unsort = order.argsort()
        logits = torch.stack(logits, 1)[unsort]  # (B, T, V)
        alphas = torch.stack(alphas, 1)[unsort]  # (B, T, N)
        T = input_ids.shape[1] - 1
        if logits.shape[1] < T:  # every caption ended early (trailing padding columns)
            logits = F.pad(logits, (0, 0, 0, T - logits.shape[1]))
            alphas = F.pad(alphas, (0, 0, 0, T - alphas.shape[1]))
        return CaptionerOutput(logits, alphas)

    def log_prob_step(self, tokens: torch.Tensor, state: tuple, context: tuple
                      ) -> tuple[torch.Tensor, tuple]:
        """``step`` as a :data:`StepFn` for :func:`greedy_search` and :func:`beam_search`."""
        logits, state, _ = self.step(tokens, state, context)
        return logits.log_softmax(-1), state

    @torch.no_grad()
    def generate(self, features: torch.Tensor, mask: torch.Tensor | None = None,
                 beam_width: int = 1, max_length: int = 32, length_penalty: float = 1.0
                 ) -> torch.Tensor:
        """Caption each image: greedy for ``beam_width=1``, else :func:`beam_search`'s best
        hypothesis. Returns token ids (B, L) after ``<bos>``, ending in ``<eos>`` (unless cut at
        ``max_length``), padded with ``pad_id``."""
        mask = self._check_features(features, mask)
        state, context = self.start(features, mask)
        c = self.config
        if beam_width == 1:
            return greedy_search(self.log_prob_step, state, context, c.bos_id, c.eos_id,
                                 max_length, c.pad_id)[0]
        out = beam_search(self.log_prob_step, state, context, c.bos_id, c.eos_id, beam_width,
                          max_length, length_penalty, c.pad_id)
        return out.sequences[:, 0]


def _forget_bias_one(lstm: nn.LSTMCell) -> None:
    """Start the forget gate's bias at 1, so that the cell keeps its memory early in training
    (Gers et al. 2000; Jozefowicz et al. 2015). PyTorch orders the gates input, forget, cell,
    output; the two bias vectors add up, so one of them carries the 1."""
    H = lstm.hidden_size
    with torch.no_grad():
        lstm.bias_ih[H:2 * H].fill_(1.0)
        lstm.bias_hh[H:2 * H].zero_()


def _masked_mean(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(features)  # (B, N, 1)
    return (features * weights).sum(1) / weights.sum(1)  # (B, N, F) -> (B, F)


class ShowAttendTell(Captioner):
    """Show, Attend and Tell (Xu et al. 2015), soft attention. Built in §40.2.

    At step t, with the previous word ``y`` and LSTM state ``(h, c)``: attention of ``h`` over
    the features gives ``alpha_t`` and a context, scaled by the gate ``beta_t = sigmoid(W_b h)``;
    the LSTM reads ``[E y; z_t]``; the deep output layer scores the next word from
    ``E y + L_h h_t + L_z z_t``. The initial state is a linear map (and tanh) of the mean
    feature; the forget gate's bias starts at 1.
    """

    def __init__(self, config: ShowAttendTellConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=c.pad_id)
        self.init_h = nn.Linear(c.feature_dim, c.hidden_dim)
        self.init_c = nn.Linear(c.feature_dim, c.hidden_dim)
        self.attention = SoftAttention(c.feature_dim, c.hidden_dim, c.attention_dim)
        self.gate = nn.Linear(c.hidden_dim, 1)
        self.lstm = nn.LSTMCell(c.embed_dim + c.feature_dim, c.hidden_dim)
        _forget_bias_one(self.lstm)
        self.out_h = nn.Linear(c.hidden_dim, c.embed_dim)
        self.out_z = nn.Linear(c.feature_dim, c.embed_dim)
        self.dropout = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.embed_dim, c.vocab_size)

    def start(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[tuple, tuple]:
        """Initial state ``(h0, c0)`` (B, H) each from the mean feature; the context holds the
        features, their mask and their attention projection (B, N, A)."""
        mean = _masked_mean(features, mask)  # (B, F)
        state = (torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))
        return state, (features, mask, self.attention.feature_proj(features))

    def step(self, tokens: torch.Tensor, state: tuple, context: tuple
             ) -> tuple[torch.Tensor, tuple, torch.Tensor]:
        """One word: tokens (B,) -> logits (B, V), new state, alpha (B, N)."""
        (h, c), (features, mask, projected) = state, context
        z, alpha = self.attention(projected, features, mask, h)  # (B, F), (B, N)
        z = torch.sigmoid(self.gate(h)) * z  # the gate beta_t (B, 1) scales the context
        e = self.embed(tokens)  # (B, E)
        h, c = self.lstm(torch.cat([e, z], dim=-1), (h, c))  # (B, H) each
        logits = self.out(self.dropout(e + self.out_h(h) + self.out_z(z)))  # (B, V)
        return logits, (h, c), alpha


class BottomUpTopDown(Captioner):
    """Bottom-Up Top-Down captioning (Anderson et al. 2018). Built in §40.2.

    At step t: the top-down attention LSTM reads ``[h2_{t-1}; mean feature; E y]``; its state
    ``h1_t`` attends over the regions; the language LSTM reads ``[attended feature; h1_t]`` and
    its state ``h2_t`` scores the next word. Both LSTMs start at zero; their forget gates'
    biases start at 1.
    """

    def __init__(self, config: BottomUpTopDownConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=c.pad_id)
        self.attention_lstm = nn.LSTMCell(c.hidden_dim + c.feature_dim + c.embed_dim, c.hidden_dim)
        self.attention = SoftAttention(c.feature_dim, c.hidden_dim, c.attention_dim)
        self.language_lstm = nn.LSTMCell(c.feature_dim + c.hidden_dim, c.hidden_dim)
        _forget_bias_one(self.attention_lstm)
        _forget_bias_one(self.language_lstm)
        self.dropout = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.hidden_dim, c.vocab_size)

    def start(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[tuple, tuple]:
        """Zero states ``(h1, c1, h2, c2)`` (B, H) each; the context holds the features, their
        mask, their attention projection (B, N, A) and the mean feature (B, F)."""
        zeros = features.new_zeros(features.shape[0], self.config.hidden_dim)
        context = (features, mask, self.attention.feature_proj(features),
                   _masked_mean(features, mask))
        return (zeros, zeros, zeros, zeros), context

    def step(self, tokens: torch.Tensor, state: tuple, context: tuple
             ) -> tuple[torch.Tensor, tuple, torch.Tensor]:
        """One word: tokens (B,) -> logits (B, V), new state, alpha (B, N)."""
        (h1, c1, h2, c2), (features, mask, projected, mean) = state, context
        x1 = torch.cat([h2, mean, self.embed(tokens)], dim=-1)  # (B, H + F + E)
        h1, c1 = self.attention_lstm(x1, (h1, c1))  # top-down attention LSTM
        v, alpha = self.attention(projected, features, mask, h1)  # (B, F), (B, N)
        h2, c2 = self.language_lstm(torch.cat([v, h1], dim=-1), (h2, c2))  # language LSTM
        return self.out(self.dropout(h2)), (h1, c1, h2, c2), alpha


# ---------------------------------------------------------------------------- losses
def caption_loss(logits: torch.Tensor, targets: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Teacher forcing's loss: cross-entropy of logits (B, T, V) against the next tokens
    ``targets`` (B, T), averaged over the tokens that are not ``pad_id``. Built in §40.2."""
    if logits.dim() != 3 or logits.shape[:2] != targets.shape:
        raise ValueError(f"expected logits (B, T, V) and targets (B, T), got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=pad_id)


def doubly_stochastic_penalty(alphas: torch.Tensor, step_mask: torch.Tensor,
                              feature_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Show, Attend and Tell's regulariser ``sum_i (1 - sum_t alpha_ti)^2``: each feature ``i``
    should receive, summed over the caption's steps, a total attention of about one. alphas
    (B, T, N); step_mask (B, T) is False after the caption's end; feature_mask (B, N) is False on
    padding features, which are left out. Returns the mean over the batch (a scalar).
    Built in §40.2."""
    if alphas.dim() != 3 or step_mask.shape != alphas.shape[:2]:
        raise ValueError(f"expected alphas (B, T, N) and step_mask (B, T), got "
                         f"{tuple(alphas.shape)} and {tuple(step_mask.shape)}")
    total = (alphas * step_mask.unsqueeze(-1).to(alphas)).sum(1)  # (B, T, N) -> (B, N)
    penalty = (1.0 - total) ** 2  # (B, N)
    if feature_mask is not None:
        penalty = penalty * feature_mask.to(penalty)
    return penalty.sum(-1).mean()


def caption_batches(features: torch.Tensor, mask: torch.Tensor, input_ids: torch.Tensor,
                    batch_size: int, pad_id: int) -> Callable[[int], tuple]:
    """Teacher forcing's batches for :func:`mmcourse.train.fit`: ``step -> (features, mask,
    input_ids)``, ``batch_size`` random images, each with one of its references at random, drawn
    from a generator seeded by the step (so a run is the same whatever came before). features
    (S, N, F), mask (S, N), input_ids (S, R, L): R references per image, padded with ``pad_id``;
    the batch's ids are cut to its longest caption. Built in §40.2."""
    if (input_ids.dim() != 3 or features.dim() != 3 or features.shape[0] != input_ids.shape[0]
            or mask.shape != features.shape[:2]):
        raise ValueError(f"expected features (S, N, F), mask (S, N) and input_ids (S, R, L) with "
                         f"the same S, got {tuple(features.shape)}, {tuple(mask.shape)} and "
                         f"{tuple(input_ids.shape)}")

    S, R = input_ids.shape[:2]

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(step)
        images = torch.randint(0, S, (batch_size,), generator=g)  # (batch_size,)
        ids = input_ids[images, torch.randint(0, R, (batch_size,), generator=g)]  # (batch, L)
        return features[images], mask[images], ids[:, : int((ids != pad_id).sum(1).max())]

    return batch


def captioner_loss(model: Captioner, batch: tuple, penalty: float = 0.0) -> torch.Tensor:
    """Teacher forcing's loss on one ``(features, mask, input_ids)`` batch: :func:`caption_loss`
    plus ``penalty`` times :func:`doubly_stochastic_penalty` (Show, Attend and Tell's lambda).
    Built in §40.2."""
    features, mask, input_ids = batch
    out = model(features, mask, input_ids)
    targets = input_ids[:, 1:]  # (B, L - 1): the word each step must predict
    loss = caption_loss(out.logits, targets, model.config.pad_id)
    if penalty:
        steps = targets != model.config.pad_id  # (B, L - 1): the steps inside the caption
        loss = loss + penalty * doubly_stochastic_penalty(out.alphas, steps, mask)
    return loss


# ---------------------------------------------------------------------------- decoding
@dataclass
class BeamSearchOutput:
    """What :func:`beam_search` returns, best hypothesis first. Built in §40.2.

    - ``sequences``: (B, K, L) token ids after ``<bos>``: the words, ``<eos>`` (unless the
      hypothesis was cut at ``max_length``), then ``pad_id``.
    - ``scores``: (B, K), descending: the summed log-probability divided by
      ``length ** length_penalty``.
    - ``lengths``: (B, K), tokens generated, ``<eos>`` included.
    """

    sequences: torch.Tensor
    scores: torch.Tensor
    lengths: torch.Tensor


def _check_decoding(bos_id: int, eos_id: int, max_length: int) -> None:
    if not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive int, got {max_length!r}")
    if bos_id == eos_id:
        raise ValueError(f"bos_id and eos_id must differ, got {bos_id} for both")


def _batch_size(state: tuple, context: tuple) -> int:
    sizes = {t.shape[0] for t in (*state, *context)}
    if not sizes:
        raise ValueError("expected at least one tensor in state or context, got none")
    if len(sizes) != 1:
        raise ValueError(f"expected every state and context tensor to have the batch size first, "
                         f"got first dimensions {sorted(sizes)}")
    return sizes.pop()


def greedy_search(step_fn: StepFn, state: tuple, context: tuple, bos_id: int, eos_id: int,
                  max_length: int, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding: at each step take the most probable token, until every sequence has
    emitted ``eos_id`` or ``max_length`` tokens. ``state`` (updated by ``step_fn``) and
    ``context`` (constant) are tuples of tensors with the batch first. Returns sequences (B, L)
    (after ``<bos>``, padded with ``pad_id`` after ``<eos>``) and their summed log-probabilities
    (B,). Built in §40.2."""
    _check_decoding(bos_id, eos_id, max_length)
    B = _batch_size(state, context)
    tokens = torch.full((B,), bos_id, dtype=torch.long, device=(*state, *context)[0].device)
    finished = torch.zeros(B, dtype=torch.bool, device=tokens.device)
    scores = torch.zeros(B, device=tokens.device)
    out = []
    for _ in range(max_length):
        log_probs, state = step_fn(tokens, state, context)  # (B, V)
        best, tokens = log_probs.max(-1)  # (B,) each
        scores = scores + best.masked_fill(finished, 0.0)
        out.append(tokens.masked_fill(finished, pad_id))
        finished = finished | (tokens == eos_id)
        if finished.all():
            break
    return torch.stack(out, 1), scores


def beam_step(scores: torch.Tensor, log_probs: torch.Tensor, n: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of beam search: extend each of the K beams of each item by every token of the
    vocabulary and keep the ``n`` best continuations by summed log-probability. scores (B, K),
    log_probs (B, K, V) -> their scores (B, n) (descending), the beam each extends (B, n) and its
    new token (B, n). Built in §40.2."""
    if log_probs.dim() != 3 or scores.shape != log_probs.shape[:2]:
        raise ValueError(f"expected scores (B, K) and log_probs (B, K, V), got "
                         f"{tuple(scores.shape)} and {tuple(log_probs.shape)}")
    B, K, V = log_probs.shape
    if not 1 <= n <= K * V:
        raise ValueError(f"expected n between 1 and K * V = {K * V}, got {n}")
    total = (scores[..., None] + log_probs).flatten(1)  # (B, K * V)
    top, index = total.topk(n, dim=-1)  # (B, n) each
    return top, torch.div(index, V, rounding_mode="floor"), index % V


def beam_search(step_fn: StepFn, state: tuple, context: tuple, bos_id: int, eos_id: int,
                beam_width: int, max_length: int, length_penalty: float = 1.0,
                pad_id: int = 0) -> BeamSearchOutput:
    """Beam search as ``transformers``' ``generate(num_beams=K, early_stopping=True)`` does it.

    Each step extends the K open hypotheses of every item and keeps the 2K best continuations
    (:func:`beam_step`). Those among the K best that end (with ``eos_id``, or at ``max_length``)
    are set aside as finished, scored by summed log-probability / ``length ** length_penalty``
    (0: the plain log-probability, which favours short captions; 1: the mean per token); the K
    best that go on stay open. An item is done when K hypotheses have finished; the search stops
    when every item is done. ``state`` (reordered as beams move) and ``context`` (constant) are
    tuples of tensors with the batch first; ``step_fn`` sees B * K rows. With ``beam_width=1``
    this is :func:`greedy_search`. Built in §40.2."""
    _check_decoding(bos_id, eos_id, max_length)
    if not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"beam_width must be a positive int, got {beam_width!r}")
    B, K = _batch_size(state, context), beam_width
    state = tuple(s.repeat_interleave(K, 0) for s in state)  # (B, ...) -> (B * K, ...)
    context = tuple(c.repeat_interleave(K, 0) for c in context)
    device = (*state, *context)[0].device
    open_scores = torch.full((B, K), float("-inf"), device=device)
    open_scores[:, 0] = 0.0  # every beam starts as the same <bos>: keep one, so no duplicates
    open_seqs = torch.zeros(B, K, 0, dtype=torch.long, device=device)
    done_scores = torch.full((B, K), float("-inf"), device=device)
    done_seqs = torch.full((B, K, max_length), pad_id, dtype=torch.long, device=device)
    done_lengths = torch.zeros(B, K, dtype=torch.long, device=device)
    tokens = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
    rows = torch.arange(B, device=device)[:, None] * K  # (B, 1): the first row of each item
    top_k = torch.arange(2 * K, device=device) < K  # (2K,): the K best candidates
    for t in range(max_length):
        log_probs, state = step_fn(tokens, state, context)  # (B * K, V)
        scores, parent, new = beam_step(open_scores, log_probs.view(B, K, -1), 2 * K)  # (B, 2K)
        seqs = torch.cat([open_seqs.gather(1, parent[..., None].expand(-1, -1, t)),
                          new[..., None]], dim=-1)  # (B, 2K, t + 1)
        ends = (new == eos_id) | (t == max_length - 1)  # (B, 2K)
        # 1. finished hypotheses among the K best join the finished ones, until K have finished
        full = (done_scores > float("-inf")).all(-1, keepdim=True)  # (B, 1)
        final = (scores / (t + 1) ** length_penalty).masked_fill(~(ends & top_k) | full,
                                                                 float("-inf"))
        padded = F.pad(seqs, (0, max_length - t - 1), value=pad_id)  # (B, 2K, max_length)
        merged = torch.cat([done_scores, final], dim=1)  # (B, 3K)
        done_scores, keep = merged.topk(K, dim=-1)
        done_seqs = torch.cat([done_seqs, padded], 1).gather(
            1, keep[..., None].expand_as(done_seqs))
        lengths = torch.cat([done_lengths, torch.full_like(final, t + 1, dtype=torch.long)], 1)
        done_lengths = lengths.gather(1, keep)
        if (done_scores > float("-inf")).all():
            break
        # 2. the K best hypotheses that go on stay open
        open_scores, keep = scores.masked_fill(ends, float("-inf")).topk(K, dim=-1)  # (B, K)
        open_seqs = seqs.gather(1, keep[..., None].expand(-1, -1, t + 1))
        state = tuple(s.index_select(0, (rows + parent.gather(1, keep)).flatten()) for s in state)
        tokens = new.gather(1, keep).flatten()
    L = int(done_lengths.max())
    return BeamSearchOutput(done_seqs[..., :L], done_scores, done_lengths)


# ---------------------------------------------------------------------------- checkpoints
_CAPTIONERS = {"ShowAttendTell": (ShowAttendTell, ShowAttendTellConfig),
               "BottomUpTopDown": (BottomUpTopDown, BottomUpTopDownConfig)}


def save_captioners(path: str | Path, encoder: GridEncoder, captioners: dict[str, Captioner],
                    vocab: Sequence[str], notes: str = "") -> None:
    """Write an encoder and the captioners that read its features to one safetensors file: the
    weights under ``encoder.`` and ``<name>.``, and as JSON metadata the encoder's sizes, each
    captioner's class and configuration, the tokenizer's ``vocab`` and free-text ``notes``.
    Built in §40.2."""
    from safetensors.torch import save_file

    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    kinds = {}
    for name, model in captioners.items():
        if type(model).__name__ not in _CAPTIONERS or "." in name:
            raise ValueError(f"expected captioners of {sorted(_CAPTIONERS)} under names without "
                             f"dots, got {name!r}: {type(model).__name__}")
        state |= {f"{name}.{k}": v for k, v in model.state_dict().items()}
        kinds[name] = [type(model).__name__, asdict(model.config)]
    metadata = {"encoder": json.dumps(encoder.config), "captioners": json.dumps(kinds),
                "vocab": json.dumps(list(vocab)), "notes": notes}
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path), metadata=metadata)


def load_captioners(path: str | Path) -> tuple[GridEncoder, dict[str, Captioner], dict]:
    """Read what :func:`save_captioners` wrote: the encoder and the captioners by name, in eval
    mode, and the metadata (``vocab`` and ``notes`` decoded). Built in §40.2."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if "encoder" not in metadata or "captioners" not in metadata:
        raise ValueError(f"{path} holds no captioners (expected 'encoder' and 'captioners' in its "
                         f"metadata, got {sorted(metadata)})")
    state = load_file(str(path))
    encoder = GridEncoder(**json.loads(metadata["encoder"]))
    encoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("encoder.")})
    captioners = {}
    for name, (kind, config) in json.loads(metadata["captioners"]).items():
        cls, config_cls = _CAPTIONERS[kind]
        model = cls(config_cls(**config))
        prefix = f"{name}."
        model.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                               if k.startswith(prefix)})
        captioners[name] = model.eval()
    info = {"vocab": json.loads(metadata.get("vocab", "[]")), "notes": metadata.get("notes", "")}
    return encoder.eval(), captioners, info
