"""ShapesWorld as a text corpus for a language model: each scene's captions and its questions
followed by their answers ("question: what colour is the circle? answer: red"), and a word-level
tokenizer that keeps the digits and question marks those texts need, plus the special tokens a
vision-language model and its chat template use. Built in §40.4.
"""
from __future__ import annotations

import re

from mmcourse.data.shapes import Scene
from mmcourse.models.clip import CaptionTokenizer

#: the special tokens after the words: LLaVA's image placeholder and the chat template's two roles
SPECIAL_TOKENS: tuple[str, ...] = ("<image>", "<user>", "<assistant>")


class WordTokenizer(CaptionTokenizer):
    """``CaptionTokenizer`` (same layout: ``<pad>`` = 0, ``<unk>`` = 1, the words, ``<bos>``,
    ``<eos>``; same ``encode``/``decode``/``__call__`` and ``from_checkpoint``) whose words also
    include numbers and ``?``, so that questions and counting answers survive, and whose vocabulary
    ends with the :data:`SPECIAL_TOKENS` before ``<bos>`` and ``<eos>``: ``<image>`` marks where
    a vision-language model puts an image's tokens (§40.4), ``<user>`` and ``<assistant>`` open the
    turns of a chat (§40.5). Special tokens are written in texts as they are ("<image>"), and so
    is ``<eos>`` where a chat turn ends inside a text.
    Built in §40.4."""

    SPLIT = re.compile(r"<image>|<user>|<assistant>|<eos>|[a-z]+|[0-9]+|[,:?]")

    @classmethod
    def from_texts(cls, texts: list[str]) -> WordTokenizer:
        """The tokenizer whose words are those of ``texts``, sorted, then the special tokens."""
        words = sorted({w for text in texts for w in cls.SPLIT.findall(text.lower())}
                       - set(SPECIAL_TOKENS) - {"<eos>"})
        return cls(["<pad>", "<unk>", *words, *SPECIAL_TOKENS, "<bos>", "<eos>"])

    @property
    def image_token_id(self) -> int:
        """The id of ``<image>``, the placeholder an image's visual tokens replace."""
        return self.token_id["<image>"]

    @property
    def user_token_id(self) -> int:
        """The id of ``<user>``, which opens a user turn of the chat template."""
        return self.token_id["<user>"]

    @property
    def assistant_token_id(self) -> int:
        """The id of ``<assistant>``, which opens the model's turn of the chat template."""
        return self.token_id["<assistant>"]


def qa_text(question: str, answer: str) -> str:
    """``"question: <question> answer: <answer>"``, the format the §40.4 LM is pretrained on."""
    return f"question: {question} answer: {answer}"


def lm_texts(scenes: list[Scene]) -> list[str]:
    """Every caption of every scene; every question of every scene with its true answer; and every
    question again after one of its scene's captions ("a red circle above a blue star. question:
    ..."), so that the LM learns to answer from what it has read as well as from the question
    alone."""
    captions = [c for s in scenes for c in s.captions]
    alone = [qa_text(q.question, q.answer) for s in scenes for q in s.qa]
    in_context = [f"{s.captions[k % len(s.captions)]} {qa_text(q.question, q.answer)}"
                  for s in scenes for k, q in enumerate(s.qa)]
    return captions + alone + in_context
