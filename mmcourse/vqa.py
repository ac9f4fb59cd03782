"""Teaching a vision-language model to answer questions, and scoring it with the official VQA
metric: the frozen image tower's features computed once, prompts with image placeholders, a loss
on the answer tokens only, and greedy one-word answers.

Two prompt formats: the ``"qa"`` format the §40.4 language model was pretrained on
(``<image> ... question: what colour is the circle? answer: red``), and the ``"chat"`` template of
§40.5 (``<user> <image> ... what colour is the circle? <assistant> red``, see
:mod:`mmcourse.data.instructions`). Built in §40.4.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.data.instructions import chat_text, conversation
from mmcourse.data.lm_text import WordTokenizer, qa_text
from mmcourse.data.shapes import Scene, to_tensor
from mmcourse.metrics import vqa_accuracy
from mmcourse.utils import model_device, to_device

FORMATS = ("qa", "chat")


@torch.no_grad()
def tower_features(clip: nn.Module, scenes: list[Scene], layer: int = -2, batch_size: int = 500
                   ) -> torch.Tensor:
    """The frozen CLIP image tower's patch features of each scene's image, [CLS] dropped:
    (n_scenes, N, D_v). ``clip`` is a :class:`mmcourse.models.CLIP`; ``layer`` indexes its hidden
    states (-2: the one before the last block, LLaVA's choice). The images go to ``clip``'s
    device; the features stay there."""
    device, chunks = model_device(clip), []
    for k in range(0, len(scenes), batch_size):
        images = to_tensor([s.image for s in scenes[k: k + batch_size]]).to(device)
        pixels = clip.pixel_values(images)
        chunks.append(clip.vision_features(pixels, layer=layer)[:, 1:])
    return torch.cat(chunks)


def prompt_text(question: str, image_tokens: int, fmt: str = "qa", answer: str = "") -> str:
    """A question (and its answer, or ``""`` to leave the answer to the model) in format ``fmt``,
    ``image_tokens`` ``<image>`` placeholders first."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}, expected one of {FORMATS}")
    if fmt == "chat":
        return chat_text([(question, answer)], image_tokens)
    image = " ".join(["<image>"] * image_tokens)
    return f"{image} {qa_text(question, answer)}".strip()


def response_mask(input_ids: torch.Tensor, tokenizer: WordTokenizer, fmt: str = "qa"
                  ) -> torch.Tensor:
    """True at the tokens a model is trained to write, (B, L) -> (B, L) bool: everything after
    ``answer :`` (format ``"qa"``) or after each ``<assistant>`` (``"chat"``), up to and including
    the ``<eos>`` that closes it; for ``"caption"``, every word after the image placeholders and
    the final ``<eos>``."""
    if fmt not in FORMATS + ("caption",):
        raise ValueError(f"unknown format {fmt!r}, expected one of {FORMATS + ('caption',)}")
    real = input_ids != tokenizer.pad_token_id
    if fmt == "caption":
        image = (input_ids == tokenizer.image_token_id).long()
        after_images = image.cumsum(1) == image.sum(1, keepdim=True)  # past the last placeholder
        return after_images & (image == 0) & (input_ids != tokenizer.bos_token_id) & real
    if fmt == "chat":
        opens = input_ids == tokenizer.assistant_token_id
    else:  # the ":" right after "answer"
        opens = torch.zeros_like(input_ids, dtype=torch.bool)
        opens[:, 1:] = (input_ids[:, :-1] == tokenizer.token_id["answer"]) & (
            input_ids[:, 1:] == tokenizer.token_id[":"])
    opens, closes = opens.long(), (input_ids == tokenizer.eos_token_id).long()
    inside = (opens.cumsum(1) - opens) - (closes.cumsum(1) - closes) > 0
    return inside & real


def left_pad(rows: list[list[int]], pad_token_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists padded on the left to the longest: ids and attention mask, each (B, L)."""
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for k, row in enumerate(rows):
        ids[k, length - len(row):] = torch.tensor(row)
        mask[k, length - len(row):] = 1
    return ids, mask


def answer_loss(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                vision_features: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on the positions ``targets`` (B, L) marks (e.g.
    :func:`response_mask`): the model is taught to write the answer, not the question or the
    image. ``vision_features`` None: a text-only model, called without images."""
    image = {} if vision_features is None else {"vision_features": vision_features}
    logits = model(input_ids, attention_mask=attention_mask, **image).logits  # (B, L, V)
    labels = input_ids[:, 1:].masked_fill(~targets[:, 1:], -100)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels.flatten(), ignore_index=-100)


def qa_examples(scenes: list[Scene], image_tokens: int, fmt: str = "qa"
                ) -> list[tuple[int, str]]:
    """Every question of every scene with its answer, as (scene index, text) in format ``fmt``."""
    return [(i, prompt_text(q.question, image_tokens, fmt, q.answer))
            for i, s in enumerate(scenes) for q in s.qa]


def caption_examples(scenes: list[Scene], image_tokens: int) -> list[tuple[int, str]]:
    """Every caption of every scene after the image's placeholders, as (scene index, text): the
    data of LLaVA's first stage, feature alignment."""
    image = " ".join(["<image>"] * image_tokens)
    return [(i, f"{image} {c}".strip()) for i, s in enumerate(scenes) for c in s.captions]


def chat_examples(scenes: list[Scene], image_tokens: int, per_scene: int = 2, seed: int = 0
                  ) -> list[tuple[int, str]]:
    """``per_scene`` instruction-tuning conversations per scene
    (:func:`mmcourse.data.instructions.conversation`) in the chat template, as (scene index, text):
    the data of LLaVA's second stage."""
    rng = np.random.default_rng(seed)
    return [(i, chat_text(conversation(s, rng), image_tokens))
            for i, s in enumerate(scenes) for _ in range(per_scene)]


class Batches:
    """Random training batches of ``examples``, (scene index, text) pairs: ``batches(step)``
    returns ``(input_ids, attention_mask, vision_features, targets)`` for ``batch_size`` examples
    drawn with a generator seeded by ``step`` (a run is reproducible), the texts left-padded, the
    targets by :func:`response_mask` in format ``fmt``. ``features`` None trains a blind model
    (then the texts must hold no placeholder)."""

    def __init__(self, examples: list[tuple[int, str]], features: torch.Tensor | None,
                 tokenizer: WordTokenizer, fmt: str = "qa", batch_size: int = 64) -> None:
        if features is not None and max(i for i, _ in examples) >= len(features):
            raise ValueError(f"an example refers to scene {max(i for i, _ in examples)}, but "
                             f"features has {len(features)} scenes")
        self.examples, self.features, self.tokenizer = examples, features, tokenizer
        self.fmt, self.batch_size = fmt, batch_size

    def __call__(self, step: int) -> tuple[torch.Tensor | None, ...]:
        rng = np.random.default_rng(step)
        chosen = [self.examples[k] for k in rng.integers(0, len(self.examples), self.batch_size)]
        ids, mask = left_pad([self.tokenizer.encode(t) for _, t in chosen],
                             self.tokenizer.pad_token_id)
        features = None if self.features is None else self.features[[i for i, _ in chosen]]
        return ids, mask, features, response_mask(ids, self.tokenizer, self.fmt)


def batch_loss(model: nn.Module, batch: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
    """:func:`answer_loss` on a batch of :class:`Batches` (the ``loss_fn`` of ``train.fit``)."""
    return answer_loss(model, *batch)


@torch.no_grad()
def answer_questions(model: nn.Module, tokenizer: WordTokenizer, questions: list[str],
                     features: torch.Tensor | None, image_tokens: int, fmt: str = "qa",
                     batch_size: int = 256) -> list[str]:
    """Each question's greedy one-word answer: the most likely next token after the prompt.
    ``features`` (Q, N, D_v) holds each question's image features (None: a text-only model);
    the prompts and features go to ``model``'s device."""
    device, answers = model_device(model), []
    for k in range(0, len(questions), batch_size):
        rows = [tokenizer.encode(prompt_text(q, image_tokens, fmt))[:-1]  # no <eos>: open answer
                for q in questions[k: k + batch_size]]
        ids, mask = to_device(left_pad(rows, tokenizer.pad_token_id), device)
        kwargs = {} if features is None else {
            "vision_features": features[k: k + batch_size].to(device)}
        logits = model(ids, attention_mask=mask, **kwargs).logits[:, -1]  # (B, V)
        answers += [tokenizer.vocab[i] for i in logits.argmax(-1).tolist()]
    return answers


def score_vqa(model: nn.Module, tokenizer: WordTokenizer, scenes: list[Scene],
              features: torch.Tensor | None, image_tokens: int, fmt: str = "qa"
              ) -> tuple[dict[str, float], list[str]]:
    """Official VQA accuracy of ``model`` on every question of ``scenes`` (their image features
    ``features``, (n_scenes, N, D_v), or None for a blind model): overall and per question type
    (colour, shape, count, existence, relation), and the predictions in question order."""
    qas = [(i, q) for i, s in enumerate(scenes) for q in s.qa]
    per_question = None if features is None else features[[i for i, _ in qas]]
    was_training = model.training
    model.eval()
    predictions = answer_questions(model, tokenizer, [q.question for _, q in qas], per_question,
                                   image_tokens, fmt)
    model.train(was_training)
    overall, _, by_type = vqa_accuracy(predictions, [list(q.answers) for _, q in qas],
                                       [q.question_type for _, q in qas])
    return {"overall": overall, **by_type}, predictions
