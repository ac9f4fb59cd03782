"""ANLS, the Average Normalised Levenshtein Similarity of DocVQA, as its official script computes.

For each gold answer the official evaluation lower-cases both strings, strips them and collapses
inner white space, takes the edit distance of the results, and divides by the longer of the two
*original* strings (their ``.upper()`` lengths, exactly as written there). A question scores
``1 - min(NL)`` over its gold answers, set to 0 when it falls below the threshold (0.5); the
corpus score is the mean. (Note the boundary: a similarity of exactly 0.5 is kept.)

Built in §42.5, which scores document question answering on the synthetic documents.
"""
from __future__ import annotations

from .asr import edit_distance


def _normalize(text: str) -> str:
    return " ".join(text.strip().lower().split())


def question_anls(prediction: str, golds: list[str], threshold: float = 0.5) -> float:
    """The official ANLS of one prediction against its list of gold answers."""
    det = _normalize(prediction)
    values = []
    for gold in golds:
        length = max(len(gold.upper()), len(prediction.upper()))
        values.append(0.0 if length == 0 else edit_distance(_normalize(gold), det) / length)
    score = 1 - min(values)
    return 0.0 if score < threshold else score


def anls(predictions: list[str], gold_answers: list[list[str]], threshold: float = 0.5,
         ) -> tuple[float, list[float]]:
    """ANLS of ``predictions`` (Q strings) against ``gold_answers`` (Q non-empty lists of str).

    Returns ``(corpus, per_item)``: the mean over questions and each question's score in [0, 1].
    Built in §42.5.
    """
    if isinstance(predictions, str) or isinstance(gold_answers, str):
        raise ValueError("expected predictions: list[str] and gold_answers: list[list[str]]")
    if len(predictions) != len(gold_answers):
        raise ValueError(f"expected one list of gold answers per prediction, got "
                         f"{len(predictions)} predictions and {len(gold_answers)} gold lists")
    if len(predictions) == 0:
        raise ValueError("expected at least one question, got none")
    if not 0 <= threshold <= 1:
        raise ValueError(f"expected a threshold in [0, 1], got {threshold!r}")
    for i, (pred, golds) in enumerate(zip(predictions, gold_answers)):
        if not isinstance(pred, str):
            raise ValueError(f"expected prediction {i} to be a str, got {type(pred).__name__}")
        if isinstance(golds, str) or len(golds) == 0 or not all(isinstance(g, str) for g in golds):
            raise ValueError(f"expected gold_answers[{i}] to be a non-empty list of str, "
                             f"got {golds!r}")
    per_item = [question_anls(p, g, threshold) for p, g in zip(predictions, gold_answers)]
    return sum(per_item) / len(per_item), per_item
