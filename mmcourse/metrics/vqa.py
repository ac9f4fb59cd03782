"""VQA accuracy as the official VQA v1/v2 evaluation computes it (``vqaEval.py``).

The official script (GT-Vision-Lab/VQA, ``PythonEvaluationTools/vqaEvaluation/vqaEval.py``) has
two versions, and code bases use both; ``version`` picks one:

- ``"2016"`` (the default): commit 458a8b2 of October 2016, the version the VQA v2 challenges
  ran. It normalises the *predicted* answer (tabs and newlines to spaces, strip, punctuation, then
  lower-casing, number words to digits, articles dropped, contractions restored) but treats the
  ten *human* answers differently: they only get the punctuation step, and only when the ten
  answers are not all identical.
- ``"2021"``: commit a013f00 of March 2021, "Fixed processing answers bug". It strips white space
  from the human answers too; when the ten are not all identical it gives them and the prediction
  both normalisation steps; when all ten are identical it normalises neither and compares the raw
  (stripped) strings. So ``'Yes'`` against ten ``'yes'``, or ``'two'`` against ten ``'2'``, scores
  1 in the 2016 version and 0 in the 2021 one, while ``'2'`` against seven ``'two'`` and three
  ``'3'`` scores 0 in 2016 and 1 in 2021.

A prediction then scores ``min(1, matches / 3)`` against each set of nine answers left when one
annotator is held out, averaged over the ten held-out annotators. This module reproduces all of
that, quirks included (e.g. the period stripping stops after 32 periods because the script passes
``re.UNICODE`` where ``re.sub`` expects ``count``).

Built in §42.1; §40.5 scores the tiny LLaVA with it.
"""
from __future__ import annotations

import re
from collections import defaultdict

#: the official ``contractions`` map (apostrophe-less spellings -> the apostrophe forms)
CONTRACTIONS: dict[str, str] = dict(pair.split(":") for pair in (
    "aint:ain't arent:aren't cant:can't couldve:could've couldnt:couldn't couldn'tve:couldn't've "
    "couldnt've:couldn't've didnt:didn't doesnt:doesn't dont:don't hadnt:hadn't "
    "hadnt've:hadn't've hadn'tve:hadn't've hasnt:hasn't havent:haven't hed:he'd hed've:he'd've "
    "he'dve:he'd've hes:he's howd:how'd howll:how'll hows:how's Id've:I'd've I'dve:I'd've Im:I'm "
    "Ive:I've isnt:isn't itd:it'd itd've:it'd've it'dve:it'd've itll:it'll let's:let's maam:ma'am "
    "mightnt:mightn't mightnt've:mightn't've mightn'tve:mightn't've mightve:might've "
    "mustnt:mustn't mustve:must've neednt:needn't notve:not've oclock:o'clock oughtnt:oughtn't "
    "ow's'at:'ow's'at 'ows'at:'ow's'at 'ow'sat:'ow's'at shant:shan't shed've:she'd've "
    "she'dve:she'd've she's:she's shouldve:should've shouldnt:shouldn't shouldnt've:shouldn't've "
    "shouldn'tve:shouldn't've somebody'd:somebodyd somebodyd've:somebody'd've "
    "somebody'dve:somebody'd've somebodyll:somebody'll somebodys:somebody's someoned:someone'd "
    "someoned've:someone'd've someone'dve:someone'd've someonell:someone'll someones:someone's "
    "somethingd:something'd somethingd've:something'd've something'dve:something'd've "
    "somethingll:something'll thats:that's thered:there'd thered've:there'd've "
    "there'dve:there'd've therere:there're theres:there's theyd:they'd theyd've:they'd've "
    "they'dve:they'd've theyll:they'll theyre:they're theyve:they've twas:'twas wasnt:wasn't "
    "wed've:we'd've we'dve:we'd've weve:we've werent:weren't whatll:what'll whatre:what're "
    "whats:what's whatve:what've whens:when's whered:where'd wheres:where's whereve:where've "
    "whod:who'd whod've:who'd've who'dve:who'd've wholl:who'll whos:who's whove:who've "
    "whyll:why'll whyre:why're whys:why's wont:won't wouldve:would've wouldnt:wouldn't "
    "wouldnt've:wouldn't've wouldn'tve:wouldn't've yall:y'all yall'll:y'all'll y'allll:y'all'll "
    "yall'd've:y'all'd've y'alld've:y'all'd've y'all'dve:y'all'd've youd:you'd youd've:you'd've "
    "you'dve:you'd've youll:you'll youre:you're youve:you've"
).split())
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = ("a", "an", "the")
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@",
               "`", ",", "?", "!")
# "(?!<=\d)" is the official script's typo for a look-behind: it never fires, so every period not
# followed by a digit is removed
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")


def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``. For each of the 21 marks the decision is taken once,
    for the whole answer: if the mark touches a space anywhere in it (or the answer has a
    digit-comma-digit group such as ``1,000``), every occurrence of the mark is deleted, otherwise
    every occurrence becomes a space; then periods not followed by a digit are deleted (at most 32
    of them, as the official call does).

    >>> process_punctuation("a-b -c")  # "-c" has a hyphen after a space: both hyphens go
    'ab c'
    >>> process_punctuation("a-b")
    'a b'
    """
    out = text
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, re.UNICODE)  # re.UNICODE == 32 lands in ``count``, as there


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``: lower-case, split on white space, number words to
    digits, drop articles, restore apostrophes of common contractions."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def _strip(answer: str) -> str:
    """Tabs and newlines to spaces, then strip, as both versions do to the prediction."""
    return answer.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(answer: str) -> str:
    """How the official script normalises a *predicted* answer (and, in its 2021 version, human
    answers that disagree): tabs and newlines to spaces, strip, :func:`process_punctuation`,
    :func:`process_digit_article`.

    >>> normalize_answer("Two dogs.")
    '2 dogs'
    """
    return process_digit_article(process_punctuation(_strip(answer)))


VERSIONS = ("2016", "2021")


def _check_version(version: str) -> None:
    if not isinstance(version, str) or version not in VERSIONS:
        raise ValueError(f"expected version '2016' (GT-Vision-Lab/VQA commit 458a8b2, the "
                         f"default) or '2021' (commit a013f00), got {version!r}")


def _check(predictions: list[str], answers: list[list[str]], n_answers: int | None) -> None:
    if not isinstance(predictions, (list, tuple)) or not isinstance(answers, (list, tuple)):
        raise ValueError("expected predictions: list[str] and answers: list[list[str]]")
    if len(predictions) != len(answers):
        raise ValueError(f"expected one list of human answers per prediction, got "
                         f"{len(predictions)} predictions and {len(answers)} answer lists")
    if len(predictions) == 0:
        raise ValueError("expected at least one question, got none")
    for i, (pred, gts) in enumerate(zip(predictions, answers)):
        if not isinstance(pred, str):
            raise ValueError(f"expected prediction {i} to be a str, got {type(pred).__name__}")
        if isinstance(gts, str) or not all(isinstance(a, str) for a in gts):
            raise ValueError(f"expected answers[{i}] to be a list of str, got {gts!r}")
        if n_answers is not None and len(gts) != n_answers:
            raise ValueError(f"expected {n_answers} human answers per question (VQA v2), "
                             f"question {i} has {len(gts)}")
        if len(gts) < 2:
            raise ValueError(f"expected at least 2 human answers per question, question {i} has "
                             f"{len(gts)}")


def question_accuracy(prediction: str, answers: list[str], version: str = "2016") -> float:
    """The official accuracy of one prediction against its human answers (usually ten): the mean,
    over held-out annotators, of ``min(1, #other annotators who gave the prediction / 3)``, with
    the normalisation of the script's ``version`` (``"2016"`` or ``"2021"``, see the module)."""
    _check_version(version)
    if version == "2016":
        pred, gts = normalize_answer(prediction), list(answers)
        if len(set(gts)) > 1:  # human answers: punctuation only, and only when they disagree
            gts = [process_punctuation(a) for a in gts]
    else:
        pred, gts = _strip(prediction), [_strip(a) for a in answers]
        if len(set(gts)) > 1:  # both normalised alike; identical answers: raw strings compared
            pred, gts = normalize_answer(pred), [normalize_answer(a) for a in gts]
    hits = [a == pred for a in gts]
    total = sum(hits)
    # holding out annotator k leaves total - hits[k] matching answers among the others
    return sum(min(1.0, (total - h) / 3) for h in hits) / len(gts)


def vqa_accuracy(predictions: list[str], answers: list[list[str]],
                 answer_types: list[str] | None = None, n_answers: int | None = 10,
                 version: str = "2016",
                 ) -> tuple[float, list[float]] | tuple[float, list[float], dict[str, float]]:
    """Official VQA v1/v2 accuracy of ``predictions`` (Q strings) against ``answers`` (Q lists of
    ten human answers; pass ``n_answers=None`` to allow another number). ``version`` chooses the
    official script's normalisation: ``"2016"`` (commit 458a8b2, the default) or ``"2021"``
    (commit a013f00); the module docstring says how they differ.

    Returns ``(corpus, per_item)``: the mean accuracy in [0, 1] and each question's accuracy. With
    ``answer_types`` (Q labels such as "yes/no", "number", "other") a third element is returned:
    the mean accuracy per type. The official script reports these numbers x100, rounded to two
    decimals; here they are left as unrounded fractions. Built in §42.1.
    """
    _check_version(version)
    _check(predictions, answers, n_answers)
    per_item = [question_accuracy(p, a, version) for p, a in zip(predictions, answers)]
    corpus = sum(per_item) / len(per_item)
    if answer_types is None:
        return corpus, per_item
    return corpus, per_item, _by_type(per_item, answer_types)


def _by_type(per_item: list[float], types: list[str]) -> dict[str, float]:
    if len(types) != len(per_item):
        raise ValueError(f"expected one answer type per question, got {len(types)} types for "
                         f"{len(per_item)} questions")
    groups: dict[str, list[float]] = defaultdict(list)
    for t, acc in zip(types, per_item):
        groups[t].append(acc)
    return {t: sum(v) / len(v) for t, v in groups.items()}


def vqa_accuracy_by_type(predictions: list[str], answers: list[list[str]], answer_types: list[str],
                         n_answers: int | None = 10, version: str = "2016") -> dict[str, float]:
    """Mean official accuracy per answer type (e.g. ``{"yes/no": 0.93, "number": 0.71, ...}``),
    plus ``"overall"``, with the script's ``version`` as in :func:`vqa_accuracy`. Built in
    §42.1."""
    corpus, _, by_type = vqa_accuracy(predictions, answers, answer_types, n_answers, version)
    return {"overall": corpus, **by_type}


def gqa_consistency(predictions: list[str], answers: list[str],
                    entailed: list[list[int]]) -> tuple[float, int]:
    """GQA's consistency (Hudson & Manning 2019, ``eval.py``): how often a model that answers a
    question correctly also answers the questions that answer *entails*.

    ``predictions`` and ``answers`` hold Q strings (a prediction is right when it equals its single
    gold answer exactly, as GQA scores); ``entailed[i]`` lists the indices of the questions whose
    answers follow from question ``i``'s answer (``i`` itself is ignored, as there). For every
    question answered correctly with at least one entailed question, the accuracy over its
    entailed questions; consistency is the mean of these. Returns ``(consistency, n)`` with ``n``
    the number of questions averaged; ``(nan, 0)`` when no question qualifies (the official script
    reports 0 then, which reads as a total failure). Built in §42.1.
    """
    if not isinstance(predictions, (list, tuple)) or not isinstance(answers, (list, tuple)):
        raise ValueError("expected predictions: list[str] and answers: list[str]")
    if not len(predictions) == len(answers) == len(entailed):
        raise ValueError(f"expected one prediction, one answer and one entailed list per question, "
                         f"got {len(predictions)}, {len(answers)} and {len(entailed)}")
    for i, (pred, gold) in enumerate(zip(predictions, answers)):
        if not isinstance(pred, str) or not isinstance(gold, str):
            raise ValueError(f"expected question {i}'s prediction and answer to be str, got "
                             f"{type(pred).__name__} and {type(gold).__name__}")
    scores = []
    for i, links in enumerate(entailed):
        if isinstance(links, (str, int)) or not all(isinstance(j, int) for j in links):
            raise ValueError(f"expected entailed[{i}] to be a list of int, got {links!r}")
        if any(not 0 <= j < len(answers) for j in links):
            raise ValueError(f"expected entailed[{i}] to index the {len(answers)} questions, "
                             f"got {list(links)}")
        others = [j for j in links if j != i]
        if predictions[i] == answers[i] and others:
            scores.append(sum(predictions[j] == answers[j] for j in others) / len(others))
    if not scores:
        return float("nan"), 0
    return sum(scores) / len(scores), len(scores)
