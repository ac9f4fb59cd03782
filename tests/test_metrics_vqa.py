"""VQA accuracy against a transcription of the official evaluation (GT-Vision-Lab/VQA,
PythonEvaluationTools/vqaEvaluation/vqaEval.py): its 2016 version (commit 458a8b2), the default,
and its 2021 revision (commit a013f00, "Fixed processing answers bug")."""
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


    def accuracy_2021(self, resAns, answers):
        """The same question scored as commit a013f00 (March 2021) does: human answers are
        stripped too; when they disagree, human answers and prediction both get the two
        normalisation steps; when they all agree, nothing is normalised."""
        def strip(text):
            return text.replace("\n", " ").replace("\t", " ").strip()

        gts, resAns = [strip(a) for a in answers], strip(resAns)
        if len(set(gts)) > 1:
            gts = [self.processDigitArticle(self.processPunctuation(a)) for a in gts]
            resAns = self.processDigitArticle(self.processPunctuation(resAns))
        acc = [min(1, sum(a == resAns for j, a in enumerate(gts) if j != k) / 3)
               for k in range(len(gts))]
        return float(sum(acc)) / len(acc)


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


# (prediction, human answers, 2016 accuracy, 2021 accuracy), each derived by reading both versions
VERSION_CASES = [
    ("Yes", ["yes"] * 10, 1.0, 0.0),  # 2021: identical answers, raw strings compared
    ("two", ["2"] * 10, 1.0, 0.0),
    ("the circle", ["circle"] * 10, 1.0, 0.0),
    ("yes.", ["yes."] * 10, 0.0, 1.0),
    ("2", ["two"] * 7 + ["3"] * 3, 0.0, 1.0),  # 2021: disagreeing human answers normalised
    ("Red", ["Red"] * 2 + ["blue"] * 8, 0.0, 0.6),
    ("no", ["No"] * 3 + ["yes"] * 7, 0.0, 0.9),
    ("yes", ["yes "] * 9 + ["no"], 0.0, 1.0),  # 2021: human answers stripped
    ("yes", ["yes "] * 10, 0.0, 1.0),
    (" yes\n", ["yes"] * 10, 1.0, 1.0),  # both strip the prediction
    ("2", ["2"] * 10, 1.0, 1.0),
    ("blue", ["red"] * 10, 0.0, 0.0),
]


@pytest.mark.parametrize("pred,answers,acc_2016,acc_2021", VERSION_CASES)
def test_versions_2016_and_2021(pred, answers, acc_2016, acc_2021):
    assert vqa_accuracy([pred], [answers])[0] == pytest.approx(acc_2016, abs=1e-12)
    assert vqa_accuracy([pred], [answers], version="2016")[0] == pytest.approx(acc_2016, abs=1e-12)
    assert vqa_accuracy([pred], [answers], version="2021")[0] == pytest.approx(acc_2021, abs=1e-12)
    assert OFFICIAL.accuracy(pred, answers) == pytest.approx(acc_2016, abs=1e-12)
    assert OFFICIAL.accuracy_2021(pred, answers) == pytest.approx(acc_2021, abs=1e-12)


def test_version_2021_matches_transcription():
    world = ShapesWorld(seed=1, answer_disagreement=0.3)
    qas = [qa for scene in world.scenes(60) for qa in scene.qa]
    preds = [(qa.answer, qa.answer.capitalize() + ".", "no", "three", " " + qa.answer)[k % 5]
             for k, qa in enumerate(qas)]
    answers = [list(qa.answers) for qa in qas] + [list(a) for _, a, _, _ in VERSION_CASES]
    preds += [p for p, _, _, _ in VERSION_CASES] + [p for p, *_ in EDGE_CASES]
    answers += [list(a) for _, a in EDGE_CASES]
    _, per_item = vqa_accuracy(preds, answers, n_answers=None, version="2021")
    for pred, ans, value in zip(preds, answers, per_item):
        assert value == pytest.approx(OFFICIAL.accuracy_2021(pred, ans), abs=1e-9), (pred, ans)
    _, default = vqa_accuracy(preds, answers, n_answers=None)
    _, v2016 = vqa_accuracy(preds, answers, n_answers=None, version="2016")
    assert default == v2016 and default != per_item  # the default is 2016, and they differ


def test_version_passes_through_by_type():
    preds, answers, types = ["Yes", "2"], [["yes"] * 10, ["two"] * 7 + ["3"] * 3], ["a", "b"]
    assert vqa_accuracy_by_type(preds, answers, types) == pytest.approx(
        {"overall": 0.5, "a": 1.0, "b": 0.0})
    assert vqa_accuracy_by_type(preds, answers, types, version="2021") == pytest.approx(
        {"overall": 0.5, "a": 0.0, "b": 1.0})


@pytest.mark.parametrize("version", ["2020", 2016, None, "v2"])
def test_unknown_version_raises(version):
    with pytest.raises(ValueError, match="2016"):
        vqa_accuracy(["yes"], [["yes"] * 10], version=version)
    with pytest.raises(ValueError, match="2021"):
        vqa_accuracy_by_type(["yes"], [["yes"] * 10], ["yes/no"], version=version)
