"""Visual instruction data generated from scene annotations, as LLaVA generated its instructions
from COCO's captions and boxes, and the chat template a vision-language model is tuned on.

A conversation is a list of (user, assistant) turns about one scene, of two of LLaVA's three kinds:
*conversation* (several questions about the scene with their answers) and *detailed description*
(an instruction to describe the scene, answered with a caption). :func:`chat_text` writes the turns
in the template

    <user> <image> ... <image> what colour is the circle? <assistant> red <eos> <user> ... <eos>

with the image's placeholder tokens in the first user turn, and :func:`assistant_mask` marks the
tokens a model is trained to produce (the assistant's words and the ``<eos>`` that ends each turn).
Built in §40.5.
"""
from __future__ import annotations

import numpy as np
import torch

from mmcourse.data.lm_text import WordTokenizer
from mmcourse.data.shapes import Scene

#: instructions asking for a description, each answered with one of the scene's captions
DESCRIBE_PROMPTS: tuple[str, ...] = (
    "describe the image.",
    "describe this scene.",
    "what is in the picture?",
    "give a short description of the image.",
)


def conversation(scene: Scene, rng: np.random.Generator, max_questions: int = 3,
                 p_describe: float = 0.3) -> list[tuple[str, str]]:
    """One instruction-tuning conversation about ``scene``: with probability ``p_describe`` a
    description request answered by a random caption, else 1 to ``max_questions`` of the scene's
    questions in random order, each answered by its true answer."""
    if max_questions < 1:
        raise ValueError(f"expected max_questions >= 1, got {max_questions}")
    if rng.random() < p_describe:
        return [(DESCRIBE_PROMPTS[rng.integers(len(DESCRIBE_PROMPTS))],
                 scene.captions[rng.integers(len(scene.captions))])]
    k = int(rng.integers(1, min(max_questions, len(scene.qa)) + 1))
    return [(scene.qa[i].question, scene.qa[i].answer) for i in rng.permutation(len(scene.qa))[:k]]


def chat_text(turns: list[tuple[str, str]], image_tokens: int) -> str:
    """The turns in the chat template, ``image_tokens`` ``<image>`` placeholders opening the first
    user turn; the last turn's ``<eos>`` is left to the tokenizer, which ends every text with it.
    An assistant answer of ``""`` leaves the text open after ``<assistant>`` (a prompt to
    generate from); it must be the last turn."""
    if not turns:
        raise ValueError("expected at least one (user, assistant) turn, got none")
    if any(answer == "" for _, answer in turns[:-1]):
        raise ValueError("only the last turn may have an empty answer (the one to generate)")
    image = " ".join(["<image>"] * image_tokens)
    parts = []
    for k, (user, assistant) in enumerate(turns):
        opening = f"<user> {image} " if k == 0 and image_tokens else "<user> "
        parts.append(f"{opening}{user} <assistant> {assistant}".rstrip())
    return " <eos> ".join(parts)


def assistant_mask(input_ids: torch.Tensor, tokenizer: WordTokenizer) -> torch.Tensor:
    """True at the tokens the assistant writes, (B, L) -> (B, L) bool: every token after an
    ``<assistant>`` up to and including the ``<eos>`` that ends the turn. A model is trained to
    predict exactly these (the loss ignores the user's words and the image)."""
    if input_ids.dim() != 2:
        raise ValueError(f"expected input_ids of shape (B, L), got {tuple(input_ids.shape)}")
    opens = (input_ids == tokenizer.assistant_token_id).long()
    closes = (input_ids == tokenizer.eos_token_id).long()
    # inside an assistant turn: more <assistant> than <eos> seen before this token
    inside = (opens.cumsum(1) - opens) - (closes.cumsum(1) - closes) > 0
    return inside & (input_ids != tokenizer.pad_token_id)
