"""Visual dialogue models (Das et al., 2017): encoders of image + history + question, and the
discriminative and generative decoders that score 100 candidate answers.

The image is the scene's object features (:func:`mmcourse.data.dialogue.object_features`) read by a
permutation-invariant set encoder; words go through one shared embedding and LSTMs. Encoders take
a :class:`mmcourse.data.dialogue.VisDialData` batch. Built in §40.3.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class VisDialConfig:
    """A visual dialogue model: ``encoder`` "late" (late fusion) or "memory" (memory network),
    ``history`` False for the history-free ablation (image + question only; then the two encoders
    are the same model), ``decoder`` "discriminative" or "generative". ``attribute_ids``: the
    vocabulary ids of the 6 colour names, 5 shape names, "small" and "large"
    (:meth:`mmcourse.data.dialogue.Vocab.attribute_ids`). Built in §40.3."""

    vocab_size: int
    attribute_ids: tuple[int, ...]
    embed_dim: int = 32
    dim: int = 64
    encoder: str = "late"
    history: bool = True
    decoder: str = "discriminative"
    max_rounds: int = 10

    def __post_init__(self) -> None:
        if self.encoder not in ("late", "memory"):
            raise ValueError(f"encoder must be 'late' or 'memory'; got {self.encoder!r}")
        if self.decoder not in ("discriminative", "generative"):
            raise ValueError(f"decoder must be 'discriminative' or 'generative'; got {self.decoder!r}")


class SentenceEncoder(nn.Module):
    """An LSTM over word embeddings: token ids (B, L), right-padded with 0 -> the hidden state
    after the last real token (B, dim). Built in §40.3."""

    def __init__(self, embedding: nn.Embedding, dim: int) -> None:
        super().__init__()
        self.embedding = embedding
        self.lstm = nn.LSTM(embedding.embedding_dim, dim, batch_first=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"expected token ids of shape (B, L), got {tuple(ids.shape)}")
        lengths = (ids != 0).sum(1).clamp(min=1)  # (B,)
        return self.states(ids)[torch.arange(len(ids)), lengths - 1]  # (B, L, dim) -> (B, dim)

    def states(self, ids: torch.Tensor) -> torch.Tensor:
        """The hidden state after every token, (B, L) -> (B, L, dim): the state at position t
        encodes the prefix ``ids[:, :t + 1]``."""
        return self.lstm(self.embedding(ids))[0]


def per_dialogue(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """For the rounds of a batch: one row per dialogue, the one with the longest history (every
    other round's history is a prefix of it), and each round's dialogue as an index into those
    rows: (U,), (B,). Encoding histories once per dialogue is exact and saves most of the work."""
    dialogues, inverse = batch.dialogue.unique(return_inverse=True)  # (U,), (B,)
    lengths = (batch.history != 0).sum(1)  # (B,)
    key = inverse * (lengths.max() + 1) + lengths  # orders rows by dialogue, then history length
    best = torch.full((len(dialogues),), -1, dtype=key.dtype).scatter_reduce(0, inverse, key, "amax")
    rows = (key[None, :] == best[:, None]).float().argmax(1)  # (U,): the first row with that key
    return rows, inverse


class ObjectSetEncoder(nn.Module):
    """The image encoder over a scene's objects (B, M, 14) (colour and shape one-hot, "is large",
    centre x and y; :func:`mmcourse.data.dialogue.object_features`) and their mask (B, M).

    Each object is embedded as the sum of the *word embeddings* of its attribute names (colour,
    shape, "small"/"large"; ``attribute_ids`` holds their vocabulary ids, 13 in that order) and a
    projection of its position — object tags sharing the text's embedding, as OSCAR feeds detector
    tags — then an MLP. A query (B, dim) attends over the objects (as VisDial 1.0's baselines attend
    over detector regions); the sum over the objects is added, keeping their number (an average
    loses it): -> (B, dim). Built in §40.3."""

    def __init__(self, embedding: nn.Embedding, attribute_ids: tuple[int, ...], dim: int) -> None:
        super().__init__()
        if len(attribute_ids) != 13:
            raise ValueError(f"expected 13 attribute ids (6 colours, 5 shapes, small, large), "
                             f"got {len(attribute_ids)}")
        self.embedding = embedding
        self.register_buffer("attribute_ids", torch.tensor(attribute_ids), persistent=False)
        self.position = nn.Linear(2, embedding.embedding_dim)
        self.mlp = nn.Sequential(nn.Linear(embedding.embedding_dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.query = nn.Linear(dim, dim)

    def forward(self, objects: torch.Tensor, mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        if objects.dim() != 3 or objects.shape[2] != 14:
            raise ValueError(f"expected objects of shape (B, M, 14), got {tuple(objects.shape)}")
        large = objects[..., 11:12]
        tags = torch.cat([objects[..., :11], 1 - large, large], dim=-1)  # (B, M, 13): attribute words
        words = tags @ self.embedding(self.attribute_ids)  # (B, M, 13) @ (13, E) -> (B, M, E)
        per_object = self.mlp(words + self.position(objects[..., 12:]))  # -> (B, M, dim)
        scores = (per_object @ self.query(query)[:, :, None]).squeeze(2) / per_object.shape[2] ** 0.5
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)  # (B, M)
        attended = (weights[:, None, :] @ per_object).squeeze(1)  # (B, 1, M) @ (B, M, dim) -> (B, dim)
        return attended + (per_object * mask[..., None]).sum(1) / mask.shape[1]  # (B, dim)


def fusion_mlp(in_dim: int, dim: int) -> nn.Sequential:
    """The layers that fuse the concatenated encodings: Linear -> ReLU -> Linear, (B, in_dim) ->
    (B, dim); the encoders apply tanh to the output. Two layers, because one linear layer over a
    concatenation cannot compare its parts ("is the attended object the colour the question
    names?", §39.4). Built in §40.3."""
    return nn.Sequential(nn.Linear(in_dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))


def memory_read(question: torch.Tensor, facts: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One memory-network read: attention of the question (B, D) over the facts (B, T, D) that
    ``mask`` (B, T) allows, ``w = softmax_t(q . f_t)``; returns the memory ``sum_t w_t f_t`` (B, D)
    and the weights (B, T). Built in §40.3."""
    if facts.dim() != 3 or question.shape != (facts.shape[0], facts.shape[2]):
        raise ValueError(f"expected question (B, D) and facts (B, T, D), got {tuple(question.shape)} "
                         f"and {tuple(facts.shape)}")
    scores = (facts @ question[:, :, None]).squeeze(2)  # (B, T, D) @ (B, D, 1) -> (B, T)
    weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)  # (B, T)
    return (weights[:, None, :] @ facts).squeeze(1), weights  # (B, 1, T) @ (B, T, D) -> (B, D)


class LateFusionEncoder(nn.Module):
    """Late fusion: question and the whole history (one long token string) are encoded separately,
    the image is attended with the query q + h, and the three are concatenated and fused by a
    two-layer MLP: ``tanh(MLP([v; q; h]))`` (B, dim); without history ``tanh(MLP([v; q]))``,
    the image attended with q.
    Built in §40.3."""

    def __init__(self, config: VisDialConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        self.use_history = config.history
        self.image = ObjectSetEncoder(embedding, config.attribute_ids, config.dim)
        self.question = SentenceEncoder(embedding, config.dim)
        self.history = SentenceEncoder(embedding, config.dim) if config.history else None
        self.fuse = fusion_mlp((3 if config.history else 2) * config.dim, config.dim)

    def forward(self, batch) -> torch.Tensor:
        q = self.question(batch.questions)  # (B, dim)
        if self.history is None:
            return torch.tanh(self.fuse(torch.cat([self.image(batch.objects, batch.object_mask, q), q], 1)))
        rows, inverse = per_dialogue(batch)  # the history string's state where each round's ends
        states = self.history.states(batch.history[rows])  # (U, Lh, dim), once per dialogue
        h = states[inverse, (batch.history != 0).sum(1).clamp(min=1) - 1]  # (B, dim)
        v = self.image(batch.objects, batch.object_mask, q + h)
        return torch.tanh(self.fuse(torch.cat([v, q, h], dim=1)))  # (B, 3 x dim) -> (B, dim)


class MemoryNetworkEncoder(nn.Module):
    """Memory network: each earlier round (and the caption) is a fact, encoded alone, plus an
    embedding of its age (rounds ago, the temporal encoding of end-to-end memory networks); the question
    attends over the facts (:func:`memory_read`) and the memory is added to it; q + m attends over
    the image and the two are fused: ``tanh(MLP([v; q + m]))`` (B, dim). Built in §40.3."""

    def __init__(self, config: VisDialConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        if not config.history:
            raise ValueError("a memory network without history is the late-fusion encoder without history")
        self.image = ObjectSetEncoder(embedding, config.attribute_ids, config.dim)
        self.question = SentenceEncoder(embedding, config.dim)
        self.fact = SentenceEncoder(embedding, config.dim)
        self.age = nn.Embedding(config.max_rounds + 1, config.dim)  # how many rounds ago a fact was said
        self.fuse = fusion_mlp(2 * config.dim, config.dim)

    def forward(self, batch, return_attention: bool = False):
        q = self.question(batch.questions)  # (B, dim)
        rows, inverse = per_dialogue(batch)
        U, T, L = batch.facts[rows].shape  # the facts are the same for every round of a dialogue
        facts = self.fact(batch.facts[rows].reshape(U * T, L)).view(U, T, -1)  # -> (U, T, dim)
        age = (batch.round[:, None] - torch.arange(T, device=q.device)).clamp(min=0)  # (B, T)
        facts = facts[inverse] + self.age(age.clamp(max=self.age.num_embeddings - 1))  # (B, T, dim)
        memory, weights = memory_read(q, facts, batch.fact_mask)  # (B, dim), (B, T)
        v = self.image(batch.objects, batch.object_mask, q + memory)
        out = torch.tanh(self.fuse(torch.cat([v, q + memory], dim=1)))  # (B, 2 x dim) -> (B, dim)
        return (out, weights) if return_attention else out


class DiscriminativeDecoder(nn.Module):
    """Scores each candidate by the dot product of the encoding (B, dim) with the candidate's LSTM
    encoding: pool answers (P, L) and candidates (B, C) of pool indices -> scores (B, C).
    Built in §40.3."""

    def __init__(self, embedding: nn.Embedding, dim: int) -> None:
        super().__init__()
        self.answer = SentenceEncoder(embedding, dim)

    def forward(self, encoded: torch.Tensor, candidates: torch.Tensor, pool_ids: torch.Tensor) -> torch.Tensor:
        answers = self.answer(pool_ids)  # (P, L) -> (P, dim): every pool answer once
        return (answers[candidates] @ encoded[:, :, None]).squeeze(2)  # (B, C, dim) @ (B, dim, 1) -> (B, C)


class GenerativeDecoder(nn.Module):
    """An LSTM language model over answers that starts from the encoding (h0 = encoding, c0 = 0).
    Token ids start with ``<bos>`` (1) and end with ``<eos>`` (2). Built in §40.3."""

    def __init__(self, embedding: nn.Embedding, dim: int) -> None:
        super().__init__()
        self.embedding = embedding
        self.lstm = nn.LSTM(embedding.embedding_dim, dim, batch_first=True)
        self.out = nn.Linear(dim, embedding.num_embeddings)

    def forward(self, encoded: torch.Tensor, inputs: torch.Tensor, state=None):
        """Next-token logits (B, L, V) for inputs (B, L), and the LSTM state."""
        if state is None:
            state = (encoded[None].contiguous(), torch.zeros_like(encoded)[None])
        hidden, state = self.lstm(self.embedding(inputs), state)  # (B, L, E) -> (B, L, dim)
        return self.out(hidden), state

    def log_likelihood(self, encoded: torch.Tensor, answer_ids: torch.Tensor) -> torch.Tensor:
        """log p(answer | encoding), summed over the answer's tokens after ``<bos>`` (``<eos>``
        included): encoded (B, dim), answer_ids (B, C, L) -> (B, C)."""
        B, C, L = answer_ids.shape
        flat = answer_ids.reshape(B * C, L)
        logits, _ = self(encoded.repeat_interleave(C, 0), flat[:, :-1])  # (B*C, L-1, V)
        targets = flat[:, 1:]
        logp = logits.log_softmax(-1).gather(2, targets[:, :, None]).squeeze(2)  # (B*C, L-1)
        return (logp * (targets != 0)).sum(1).view(B, C)

    @torch.no_grad()
    def generate(self, encoded: torch.Tensor, max_len: int = 8) -> torch.Tensor:
        """Greedy decoding: encoded (B, dim) -> token ids (B, max_len) (after ``<bos>``)."""
        token = torch.ones(len(encoded), 1, dtype=torch.long, device=encoded.device)
        state, out = None, []
        for _ in range(max_len):
            logits, state = self(encoded, token, state)
            token = logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
            out.append(token)
        return torch.cat(out, 1)


class VisDialModel(nn.Module):
    """Encoder + decoder, as configured. ``scores(batch, pool_ids)`` ranks the candidates (B, C):
    dot products (discriminative) or log-likelihoods (generative); ``loss(batch, pool_ids)`` is
    cross-entropy over the candidates (discriminative) or over the true answer's tokens
    (generative). ``pool_ids`` (P, L) holds every pool answer as ``<bos> words <eos>``.
    Built in §40.3."""

    def __init__(self, config: VisDialConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        encoder = MemoryNetworkEncoder if config.encoder == "memory" else LateFusionEncoder
        self.encoder = encoder(config, self.embedding)
        decoder = DiscriminativeDecoder if config.decoder == "discriminative" else GenerativeDecoder
        self.decoder = decoder(self.embedding, config.dim)

    def scores(self, batch, pool_ids: torch.Tensor) -> torch.Tensor:
        encoded = self.encoder(batch)  # (B, dim)
        if self.config.decoder == "discriminative":
            return self.decoder(encoded, batch.candidates, pool_ids)
        return self.decoder.log_likelihood(encoded, pool_ids[batch.candidates])  # (B, C)

    def loss(self, batch, pool_ids: torch.Tensor) -> torch.Tensor:
        if self.config.decoder == "discriminative":
            return F.cross_entropy(self.scores(batch, pool_ids), batch.truth)
        answers = pool_ids[batch.answers]  # (B, L)
        logits, _ = self.decoder(self.encoder(batch), answers[:, :-1])  # (B, L-1, V)
        return F.cross_entropy(logits.transpose(1, 2), answers[:, 1:], ignore_index=0)
