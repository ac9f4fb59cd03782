"""Word and character error rates, as jiwer 4 computes them, and the edit distance under them.

jiwer pools the edits of all utterances and divides by the pooled reference length:
``WER = (S + D + I) / N``, not the mean of per-utterance rates. Before counting, ``wer`` collapses
runs of white space, strips, and splits on single spaces; ``cer`` only strips and counts every
character, spaces included. When all references are empty jiwer returns the number of inserted
words instead of a rate; this module does the same, so the two always agree.

Built in §41.1, which scores the Whisper-style recogniser on held-out voices.
"""
from __future__ import annotations

import re
from collections.abc import Hashable, Sequence

_MULTI_SPACE = re.compile(r"\s\s+")


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance (unit-cost insertions, deletions, substitutions) between two sequences
    of hashable items (a ``str`` is a sequence of characters, a list of words works the same way).

    Bit-parallel (Myers 1999, Hyyrö 2003): one big-integer operation per item of the longer
    sequence instead of a quadratic table. Built in §41.1.
    """
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[Hashable, int] = {}
    for i, item in enumerate(b):
        peq[item] = peq.get(item, 0) | (1 << i)
    full = (1 << m) - 1
    top = 1 << (m - 1)
    pv, mv, score = full, 0, m
    for item in a:
        eq = peq.get(item, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & full
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = (mh | ~(xv | ph)) & full
        mv = ph & xv
    return score


def _words(text: str) -> list[str]:
    """jiwer's ``wer_default``: collapse white-space runs, strip, split on single spaces."""
    return [w for w in _MULTI_SPACE.sub(" ", text).strip().split(" ") if w]


def _chars(text: str) -> list[str]:
    """jiwer's ``cer_default``: strip, then every character (spaces included)."""
    return list(text.strip())


def _error_rate(references: list[str], hypotheses: list[str], split) -> tuple[float, list[float]]:
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise ValueError("expected lists of strings (one per utterance), got a single str")
    if len(references) != len(hypotheses):
        raise ValueError(f"expected as many hypotheses as references, got {len(hypotheses)} "
                         f"hypotheses and {len(references)} references")
    if len(references) == 0:
        raise ValueError("expected at least one utterance, got none")
    for name, texts in (("reference", references), ("hypothesis", hypotheses)):
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"expected {name} {i} to be a str, got {type(t).__name__}")
    edits, lengths, per_item = 0, 0, []
    for ref, hyp in zip(references, hypotheses):
        r, h = split(ref), split(hyp)
        d = edit_distance(r, h)
        # jiwer's edge case: an empty reference scores its number of insertions
        per_item.append(d / len(r) if r else float(len(h)))
        edits += d
        lengths += len(r)
    if lengths == 0:
        return float(edits), per_item
    return edits / lengths, per_item


def wer(references: list[str], hypotheses: list[str]) -> tuple[float, list[float]]:
    """Word error rate of ``hypotheses`` against ``references`` (aligned lists of str).

    Returns ``(corpus, per_item)``: pooled edits over pooled reference words (jiwer 4's
    ``jiwer.wer``), and each utterance's own rate. Built in §41.1.
    """
    return _error_rate(references, hypotheses, _words)


def cer(references: list[str], hypotheses: list[str]) -> tuple[float, list[float]]:
    """Character error rate (spaces count as characters), as ``jiwer.cer``; same conventions as
    :func:`wer`. Built in §41.1."""
    return _error_rate(references, hypotheses, _chars)
