"""ShapesWorld as a text corpus for a language model: each scene's captions and its questions
followed by their answers ("question: what colour is the circle? answer: red"), and a word-level
tokenizer that keeps the digits and question marks those texts need. Built in §40.4.
"""
from __future__ import annotations

import re

from mmcourse.data.shapes import Scene
from mmcourse.models.clip import CaptionTokenizer


class WordTokenizer(CaptionTokenizer):
    """``CaptionTokenizer`` (same layout: ``<pad>`` = 0, ``<unk>`` = 1, the words, ``<bos>``,
    ``<eos>``; same ``encode``/``decode``/``__call__`` and ``from_checkpoint``) whose words also
    include numbers and ``?``, so that questions and counting answers survive. Built in §40.4."""

    SPLIT = re.compile(r"[a-z]+|[0-9]+|[,:?]")


def qa_text(question: str, answer: str) -> str:
    """``"question: <question> answer: <answer>"``, the format the §40.4 LM is pretrained on."""
    return f"question: {question} answer: {answer}"


def lm_texts(scenes: list[Scene]) -> list[str]:
    """Every caption of every scene, then every question of every scene with its true answer."""
    return [c for s in scenes for c in s.captions] + [qa_text(q.question, q.answer)
                                                       for s in scenes for q in s.qa]
