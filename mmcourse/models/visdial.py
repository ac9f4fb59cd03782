"""Visual dialogue models (Das et al., 2017): encoders of image + history + question, and the
discriminative and generative decoders that score 100 candidate answers.

The image is the scene's object features (:func:`mmcourse.data.dialogue.object_features`) read by a
permutation-invariant set encoder; words go through one shared embedding and position-aware bags of
words (:class:`SentenceEncoder`); the generative decoder is an LSTM. Encoders take a
:class:`mmcourse.data.dialogue.VisDialData` batch. Built in §40.3.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


#: the metadata keys of a shipped checkpoint (scripts/make_visdial_checkpoints.py), JSON-encoded
METADATA: tuple[str, ...] = ("config", "vocab", "scores", "steps", "frozen_encoder", "final_loss",
                            "notes")


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
            raise ValueError(f"decoder must be 'discriminative' or 'generative'; "
                             f"got {self.decoder!r}")


class SentenceEncoder(nn.Module):
    """A position-aware bag of words, after the position encoding of end-to-end memory networks:
    token ids (B, L), right-padded with 0 -> ``Linear(sum_j l_p(j) * E[w_j])`` (B, dim), where
    p(j) is the word's position counted back from the last real token and ``l_p`` a learned vector
    per position (initialised to 1), so recent words can weigh more than old ones. (Theirs is a
    fixed weighting counted from the start of the sentence; only their temporal encoding is
    learned.) Built in §40.3."""

    def __init__(self, embedding: nn.Embedding, dim: int, max_len: int = 128) -> None:
        super().__init__()
        self.embedding = embedding
        self.position = nn.Parameter(torch.ones(max_len, embedding.embedding_dim))
        self.proj = nn.Linear(embedding.embedding_dim, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.shape[1] > len(self.position):
            raise ValueError(f"expected token ids of shape (B, L) with L <= {len(self.position)}, "
                             f"got {tuple(ids.shape)}")
        real = ids != 0  # (B, L)
        back = real.sum(1, keepdim=True) - 1 - torch.arange(ids.shape[1], device=ids.device)
        gates = self.position[back.clamp(min=0)] * real[..., None]  # (B, L, E): 0 on padding
        return self.proj((gates * self.embedding(ids)).sum(1))  # (B, L, E) -> (B, E) -> (B, dim)


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
        self.mlp = nn.Sequential(nn.Linear(embedding.embedding_dim, dim), nn.ReLU(),
                                 nn.Linear(dim, dim))
        self.query = nn.Linear(dim, dim)

    def forward(self, objects: torch.Tensor, mask: torch.Tensor,
                query: torch.Tensor) -> torch.Tensor:
        if objects.dim() != 3 or objects.shape[2] != 14:
            raise ValueError(f"expected objects of shape (B, M, 14), got {tuple(objects.shape)}")
        large = objects[..., 11:12]
        # (B, M, 13): which attribute words name each object
        tags = torch.cat([objects[..., :11], 1 - large, large], dim=-1)
        words = tags @ self.embedding(self.attribute_ids)  # (B, M, 13) @ (13, E) -> (B, M, E)
        per_object = self.mlp(words + self.position(objects[..., 12:]))  # -> (B, M, dim)
        scores = (per_object @ self.query(query)[:, :, None]).squeeze(2)  # (B, M)
        scores = scores / per_object.shape[2] ** 0.5
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)  # (B, M)
        # (B, 1, M) @ (B, M, dim) -> (B, dim)
        attended = (weights[:, None, :] @ per_object).squeeze(1)
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
        raise ValueError(f"expected question (B, D) and facts (B, T, D), "
                         f"got {tuple(question.shape)} "
                         f"and {tuple(facts.shape)}")
    scores = (facts @ question[:, :, None]).squeeze(2)  # (B, T, D) @ (B, D, 1) -> (B, T)
    weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)  # (B, T)
    return (weights[:, None, :] @ facts).squeeze(1), weights  # (B, 1, T) @ (B, T, D) -> (B, D)


class LateFusionEncoder(nn.Module):
    """Late fusion: question and the whole history (one long token string) are encoded separately,
    the image is attended with the query q + h, and the three are concatenated and fused by a
    two-layer MLP: ``tanh(MLP([v; q; h]))`` (B, dim); without history ``tanh(MLP([v; q]))``,
    the image attended with q. (VisDial's v1.0 starter code attends with the question alone and
    fuses with one linear layer and a tanh.) Built in §40.3."""

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
            v = self.image(batch.objects, batch.object_mask, q)
            return torch.tanh(self.fuse(torch.cat([v, q], 1)))  # (B, 2 x dim) -> (B, dim)
        h = self.history(batch.history)  # (B, Lh) -> (B, dim)
        v = self.image(batch.objects, batch.object_mask, q + h)
        return torch.tanh(self.fuse(torch.cat([v, q, h], dim=1)))  # (B, 3 x dim) -> (B, dim)


class MemoryNetworkEncoder(nn.Module):
    """Memory network: each earlier round (and the caption) is a fact, encoded alone, plus an
    embedding of its age (rounds ago, the temporal encoding of end-to-end memory networks); the
    question
    attends over the facts (:func:`memory_read`) and the memory is added to it; q + m attends over
    the image and the two are fused: ``tanh(MLP([v; q + m]))`` (B, dim). Built in §40.3."""

    def __init__(self, config: VisDialConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        if not config.history:
            raise ValueError("a memory network without history is the late-fusion encoder "
                             "without history")
        self.image = ObjectSetEncoder(embedding, config.attribute_ids, config.dim)
        self.question = SentenceEncoder(embedding, config.dim)
        self.fact = SentenceEncoder(embedding, config.dim)
        # how many rounds ago a fact was said
        self.age = nn.Embedding(config.max_rounds + 1, config.dim)
        self.fuse = fusion_mlp(2 * config.dim, config.dim)

    def forward(self, batch, return_attention: bool = False):
        q = self.question(batch.questions)  # (B, dim)
        B, T, L = batch.facts.shape
        facts = self.fact(batch.facts.reshape(B * T, L)).view(B, T, -1)  # (B, T, dim)
        age = (batch.round[:, None] - torch.arange(T, device=q.device)).clamp(min=0)  # (B, T)
        facts = facts + self.age(age.clamp(max=self.age.num_embeddings - 1))  # (B, T, dim)
        memory, weights = memory_read(q, facts, batch.fact_mask)  # (B, dim), (B, T)
        v = self.image(batch.objects, batch.object_mask, q + memory)
        out = torch.tanh(self.fuse(torch.cat([v, q + memory], dim=1)))  # (B, 2 x dim) -> (B, dim)
        return (out, weights) if return_attention else out


class DiscriminativeDecoder(nn.Module):
    """Scores each candidate by the dot product of the encoding (B, dim) with the candidate's
    :class:`SentenceEncoder` encoding: pool answers (P, L) and candidates (B, C) of pool indices
    -> scores (B, C).
    Built in §40.3."""

    def __init__(self, embedding: nn.Embedding, dim: int) -> None:
        super().__init__()
        self.answer = SentenceEncoder(embedding, dim)

    def forward(self, encoded: torch.Tensor, candidates: torch.Tensor,
                pool_ids: torch.Tensor) -> torch.Tensor:
        answers = self.answer(pool_ids)  # (P, L) -> (P, dim): every pool answer once
        # (B, C, dim) @ (B, dim, 1) -> (B, C)
        return (answers[candidates] @ encoded[:, :, None]).squeeze(2)


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

    @classmethod
    def from_checkpoint(cls, path) -> tuple["VisDialModel", dict]:
        """A model saved by ``scripts/make_visdial_checkpoints.py`` (safetensors, its metadata
        JSON-encoded: the :data:`METADATA` keys), in eval mode, and the decoded metadata."""
        from safetensors import safe_open
        from safetensors.torch import load_model

        with safe_open(str(path), framework="pt") as f:
            stored = f.metadata()  # also holds safetensors' own entries (format, shared tensors)
        meta = {k: json.loads(stored[k]) for k in METADATA if k in stored}
        model = cls(VisDialConfig(**meta["config"]))
        load_model(model, str(path))
        return model.eval(), meta
