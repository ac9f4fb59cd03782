"""VQA accuracy against a transcription of the official evaluation (GT-Vision-Lab/VQA,
PythonEvaluationTools/vqaEvaluation/vqaEval.py)."""
import re

import pytest

from mmcourse.data.shapes import ShapesWorld
from mmcourse.metrics import normalize_answer, vqa_accuracy, vqa_accuracy_by_type
from mmcourse.metrics.vqa import CONTRACTIONS, NUMBER_WORDS


class OfficialVQAEval:
    """The per-question part of the official ``VQAEval.evaluate``, transcribed (Python 3 version):
    answers are dicts with an ``answer_id``, so holding one annotator out removes exactly one."""

    punct = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@",
             "`", ",", "?", "!"]
    periodStrip = re.compile(r"(?!<=\d)(\.)(?!\d)")
    commaStrip = re.compile(r"(\d)(\,)(\d)")
    articles = ["a", "an", "the"]

    def processPunctuation(self, inText):
        outText = inText
        for p in self.punct:
            if (p + " " in inText or " " + p in inText) or (
                    re.search(self.commaStrip, inText) != None):  # noqa: E711 (as written there)
                outText = outText.replace(p, "")
            else:
                outText = outText.replace(p, " ")
        outText = self.periodStrip.sub("", outText, re.UNICODE)
        return outText

    def processDigitArticle(self, inText):
        outText = []
        for word in inText.lower().split():
            word = dict(NUMBER_WORDS).setdefault(word, word)
            if word not in self.articles:
                outText.append(word)
        for wordId, word in enumerate(outText):
            if word in CONTRACTIONS:
                outText[wordId] = CONTRACTIONS[word]
        return " ".join(outText)

    def accuracy(self, resAns, answers):
        gts = [{"answer": a, "answer_id": k} for k, a in enumerate(answers)]
        resAns = resAns.replace("\n", " ").replace("\t", " ").strip()
        resAns = self.processDigitArticle(self.processPunctuation(resAns))
        gtAcc = []
        gtAnswers = [ans["answer"] for ans in gts]
        if len(set(gtAnswers)) > 1:
            for ansDic in gts:
                ansDic["answer"] = self.processPunctuation(ansDic["answer"])
        for gtAnsDatum in gts:
            otherGTAns = [item for item in gts if item != gtAnsDatum]
            matchingAns = [item for item in otherGTAns if item["answer"] == resAns]
            gtAcc.append(min(1, float(len(matchingAns)) / 3))
        return float(sum(gtAcc)) / len(gtAcc)


OFFICIAL = OfficialVQAEval()

EDGE_CASES = [
    ("two", ["2"] * 10),
    ("Two.", ["2"] * 7 + ["3"] * 3),
    ("2", ["two"] * 10),  # human answers are not number-normalised by the official script
    ("red", ["Red"] * 5 + ["red"] * 5),  # nor lower-cased
    ("yes", ["yes."] * 10),  # identical answers are not even punctuation-cleaned
    ("yes", ["yes."] * 9 + ["no"]),  # ... but they are when the annotators disagree
    ("the dog's bone", ["dog's bone"] * 4 + ["bone"] * 6),
    ("dont", ["don't"] * 10),
    ("1,000", ["1000"] * 5 + ["1,000"] * 5),
    ("left-side", ["left side"] * 10),
    ("a/b", ["a b"] * 3 + ["ab"] * 7),
    ("3.5", ["3.5"] * 10),
    ("hi!", ["hi"] * 2 + ["hello"] * 8),
    ("." * 40 + "x", ["x"] * 10),  # more than 32 periods: the official call stops stripping
    ("", ["yes"] * 10),
    ("blue\tsquare\n", ["blue square"] * 10),
    ("it's", ["its"] * 3 + ["it's"] * 7),
]


def test_per_question_accuracy_matches_official_on_edge_cases():
    preds, answers = zip(*EDGE_CASES)
    corpus, per_item = vqa_accuracy(list(preds), [list(a) for a in answers])
    for pred, ans, value in zip(preds, answers, per_item):
        assert value == pytest.approx(OFFICIAL.accuracy(pred, ans), abs=1e-9), (pred, ans)
    assert corpus == pytest.approx(sum(per_item) / len(per_item), abs=1e-12)
    assert per_item[0] == 1.0 and per_item[2] == 0.0 and per_item[4] == 0.0 and per_item[5] == 1.0


def test_per_question_accuracy_matches_official_on_shapesworld_qa():
    world = ShapesWorld(seed=0, answer_disagreement=0.3)
    qas = [qa for scene in world.scenes(60) for qa in scene.qa]
    # predictions: the true answer, a variant, a wrong answer, a number word
    preds = [(qa.answer, qa.answer.upper() + ".", "no", "three")[k % 4] for k, qa in enumerate(qas)]
    _, per_item = vqa_accuracy(preds, [list(qa.answers) for qa in qas])
    for pred, qa, value in zip(preds, qas, per_item):
        assert value == pytest.approx(OFFICIAL.accuracy(pred, list(qa.answers)), abs=1e-9)
    # leave-one-out: 1/3 credit steps, never more than 1
    assert all(0 <= v <= 1 for v in per_item) and any(0 < v < 1 for v in per_item)


def test_breakdown_by_answer_type():
    preds = ["yes", "2", "red", "no"]
    answers = [["yes"] * 10, ["2"] * 2 + ["3"] * 8, ["blue"] * 10, ["no"] * 10]
    types = ["yes/no", "number", "other", "yes/no"]
    corpus, per_item, by_type = vqa_accuracy(preds, answers, answer_types=types)
    assert by_type == pytest.approx({"yes/no": 1.0, "number": 0.6, "other": 0.0})
    expected = {"overall": corpus, **by_type}
    assert vqa_accuracy_by_type(preds, answers, types) == pytest.approx(expected)


def test_normalize_answer():
    assert normalize_answer("Two dogs.") == "2 dogs"
    assert normalize_answer("The  Cat!") == "cat"
    assert normalize_answer("isnt") == "isn't"


@pytest.mark.parametrize("preds,answers", [
    (["yes"], [["yes"] * 9]),  # not ten answers
    (["yes", "no"], [["yes"] * 10]),  # lengths differ
    ([], []),
    ([3], [["3"] * 10]),
])
def test_bad_input_raises(preds, answers):
    with pytest.raises(ValueError):
        vqa_accuracy(preds, answers)
