"""Hidden cases for the exercises of §42.1 (VQA benchmarks)."""
from __future__ import annotations

import random

from .core import Case, register


# ---------------------------------------------------------------- 42.1 the official accuracy
def _accuracy_cases() -> list[Case]:
    from mmcourse.data.shapes import ShapesWorld
    from mmcourse.metrics.vqa import question_accuracy

    hint = ("normalise the prediction with normalize_answer; clean the human answers with "
            "process_punctuation only when they are not all identical; then average, over each "
            "annotator left out, min(1, matches among the others / 3).")
    pairs = [
        ("2", ["2"] * 10), ("Two", ["2"] * 10), ("two", ["two"] * 7 + ["2"] * 3),
        ("yes", ["yes."] * 10), ("yes", ["yes."] * 9 + ["no"]), ("red", ["Red"] * 8 + ["red"] * 2),
        ("a circle", ["circle"] * 3 + ["square"] * 7), ("dont", ["don't"] * 2 + ["no"] * 8),
        ("1,000", ["1000"] * 4 + ["1,000"] * 6), ("blue", ["red"] * 10),
        ("yes", ["yes"] * 3 + ["no"] * 2), ("square", ["square", "circle"]),  # not ten answers
    ]
    world = ShapesWorld(seed=421, answer_disagreement=0.3)
    rng = random.Random(421)
    for item in (i for scene in world.scenes(6, split="val") for i in scene.qa):
        pairs.append((rng.choice([item.answer, item.answer.capitalize() + ".", "no", "three"]),
                      list(item.answers)))
    return [Case((p, a), float(question_accuracy(p, a)), f"prediction {p!r}, answers {a}",
                 hint=hint) for p, a in pairs]


register("42.1.accuracy", _accuracy_cases, atol=1e-9)


# ---------------------------------------------------------------- 42.1 GQA consistency
def _consistency_cases() -> list[Case]:
    from mmcourse.metrics import gqa_consistency

    hint = ("only questions answered correctly (exact match) with at least one entailed question "
            "other than themselves count; for each, take the accuracy over its entailed questions, "
            "then average those accuracies (not the entailed questions pooled).")
    cases = [(["yes", "yes", "yes", "red", "red"], ["yes", "yes", "no", "red", "blue"],
              [[1, 2], [0], [0, 1], [], [0]], "a hand-made example with a wrong main question"),
             (["yes", "no"], ["yes", "no"], [[0, 1], [0]], "a self-link to ignore")]
    rng = random.Random(4211)
    vocab = ["yes", "no", "red", "blue", "2"]
    while len(cases) < 8:
        n = rng.randint(3, 25)
        answers = [rng.choice(vocab) for _ in range(n)]
        predictions = [a if rng.random() < 0.7 else rng.choice(vocab) for a in answers]
        entailed = [rng.sample(range(n), rng.randint(0, min(5, n))) for _ in range(n)]
        if gqa_consistency(predictions, answers, entailed)[1] > 0:
            cases.append((predictions, answers, entailed, f"{n} random questions"))
    return [Case((p, a, e), float(gqa_consistency(p, a, e)[0]), d, hint=hint)
            for p, a, e, d in cases]


register("42.1.consistency", _consistency_cases, atol=1e-9)
