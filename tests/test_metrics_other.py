"""WER/CER against jiwer, ANLS against the official DocVQA rule, FID/KID/IS against pytorch-fid's
algorithm and torchmetrics, CLIPScore against its definition."""
import random

import numpy as np
import pytest
import torch
from scipy import linalg

from mmcourse.metrics import anls, cer, clip_score, edit_distance, fid, inception_score, kid, wer
from mmcourse.metrics.generation import frechet_distance

jiwer = pytest.importorskip("jiwer")


def _dp_distance(a, b) -> int:
    """Textbook Levenshtein table, the oracle for the bit-parallel version."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def test_edit_distance_matches_the_dynamic_programme():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
        assert edit_distance(a, b) == _dp_distance(a, b)
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3


UTTERANCES = [
    ("the cat sat on the mat", "the cat sat on mat"),
    ("a red square above a blue circle", "a red square above the blue circle and"),
    ("hello  world", " hello world "),
    ("tab\tseparated words", "tab separated words"),
    ("", "an insertion"),
    ("no overlap at all", "completely different words here"),
    ("repeated repeated repeated", "repeated"),
    ("numbers 1 2 3", "numbers one two three"),
]


def test_wer_and_cer_match_jiwer_corpus_and_per_item():
    refs, hyps = [u[0] for u in UTTERANCES], [u[1] for u in UTTERANCES]
    for ours, theirs in ((wer, jiwer.wer), (cer, jiwer.cer)):
        corpus, per_item = ours(refs, hyps)
        assert corpus == pytest.approx(theirs(refs, hyps), abs=1e-12)
        for r, h, value in zip(refs, hyps, per_item):
            assert value == pytest.approx(theirs(r, h), abs=1e-12)


def test_wer_on_random_sentences_and_all_empty_references():
    rng = random.Random(1)
    words = "a the red blue circle square left of above".split()
    refs = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(60)]
    hyps = [" ".join(rng.choices(words, k=rng.randint(0, 12))) for _ in range(60)]
    assert wer(refs, hyps)[0] == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert cer(refs, hyps)[0] == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    # jiwer's edge case: no reference words at all -> the number of insertions
    assert wer(["", " "], ["a b", "c"])[0] == jiwer.wer(["", " "], ["a b", "c"]) == 3


@pytest.mark.parametrize("bad", [(["a"], ["a", "b"]), ([], []), ("a b", "a b"), (["a"], [None])])
def test_error_rates_reject_bad_input(bad):
    with pytest.raises(ValueError):
        wer(*bad)


def _official_anls(gold_answers, prediction, threshold=0.5):
    """The DocVQA evaluation script's per-question rule, transcribed."""
    values = []
    for answer in gold_answers:
        gt = " ".join(answer.strip().lower().split())
        det = " ".join(prediction.strip().lower().split())
        dist = _dp_distance(gt, det)
        length = max(len(answer.upper()), len(prediction.upper()))
        values.append(0.0 if length == 0 else float(dist) / float(length))
    result = 1 - min(values)
    return 0 if result < threshold else result


def test_anls_matches_the_official_rule():
    preds = ["Total: $12.50", "  john SMITH ", "1999", "", "abcd", "abc", "completely wrong", "ß"]
    golds = [["total: $12.50"], ["John Smith", "J. Smith"], ["1998", "2000"], [""], ["abce"],
             ["abcdef"], ["right"], ["SS", "ss"]]
    corpus, per_item = anls(preds, golds)
    expected = [_official_anls(g, p) for p, g in zip(preds, golds)]
    assert per_item == pytest.approx(expected, abs=1e-12)
    assert corpus == pytest.approx(np.mean(expected), abs=1e-12)
    assert per_item[4] == pytest.approx(0.75) and per_item[5] == 0.5  # similarity 0.5 is kept
    with pytest.raises(ValueError):
        anls(["a"], [[]])
    with pytest.raises(ValueError):
        anls(["a", "b"], [["a"]])


def _pytorch_fid(a: np.ndarray, b: np.ndarray, eps=1e-6) -> float:
    """pytorch-fid's calculate_frechet_distance on np.mean / np.cov statistics, transcribed."""
    mu1, mu2 = a.mean(0), b.mean(0)
    sigma1, sigma2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


class _Identity(torch.nn.Module):
    """A torchmetrics feature extractor that passes features through."""

    def __init__(self, dims: int):
        super().__init__()
        self.num_features = dims

    def forward(self, x):
        return x


def _features(seed=0, n=(300, 250), d=16):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n[0], d, generator=g, dtype=torch.float64)
    b = torch.randn(n[1], d, generator=g, dtype=torch.float64) * 1.3 + 0.2
    return a, b


def test_fid_matches_pytorch_fid_and_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance
    a, b = _features()
    ours = fid(a, b)
    assert ours == pytest.approx(_pytorch_fid(a.numpy(), b.numpy()), rel=1e-6)
    metric = FrechetInceptionDistance(feature=_Identity(16))
    metric.update(a, real=True)
    metric.update(b, real=False)
    assert ours == pytest.approx(metric.compute().item(), rel=1e-6)
    assert fid(a.numpy(), a.numpy()) == pytest.approx(0.0, abs=1e-6)


def test_fid_fewer_samples_than_dimensions_and_bad_input():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 20)), rng.normal(size=(9, 20))  # singular covariances
    assert fid(a, b) == pytest.approx(_pytorch_fid(a, b), rel=1e-6)
    with pytest.raises(ValueError):
        fid(a, rng.normal(size=(9, 21)))
    with pytest.raises(ValueError):
        fid(np.full((4, 3), np.nan), a[:, :3])
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), -np.eye(2) * 5)  # imaginary part


def test_kid_matches_torchmetrics_with_the_same_seed():
    from torchmetrics.image.kid import KernelInceptionDistance
    a, b = _features(seed=1)
    metric = KernelInceptionDistance(feature=_Identity(16), subsets=6, subset_size=100)
    metric.update(a, real=True)
    metric.update(b, real=False)
    torch.manual_seed(7)
    mean, std = (t.item() for t in metric.compute())
    ours = kid(a, b, subsets=6, subset_size=100, seed=7)
    assert ours == pytest.approx((mean, std), abs=1e-6)
    with pytest.raises(ValueError):
        kid(a, b, subset_size=1000)  # more than the samples


def test_inception_score_matches_torchmetrics():
    from torchmetrics.image.inception import InceptionScore
    logits = torch.randn(103, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    metric = InceptionScore(feature=_Identity(10), splits=4)
    metric.update(logits)
    torch.manual_seed(5)
    mean, std = (t.item() for t in metric.compute())
    ours = inception_score(logits.softmax(1), splits=4, seed=5)
    assert ours == pytest.approx((mean, std), abs=1e-6)
    uniform = np.full((20, 5), 0.2)
    assert inception_score(uniform, splits=2)[0] == pytest.approx(1.0)
    one_hot = np.eye(5)[np.arange(20) % 5]
    assert inception_score(one_hot, splits=2)[0] == pytest.approx(5.0)  # confident and diverse
    with pytest.raises(ValueError):
        inception_score(np.ones((4, 3)))


def test_clip_score_is_hessels_definition():
    rng = np.random.default_rng(3)
    img, txt = rng.normal(size=(12, 8)), rng.normal(size=(12, 8))
    corpus, per_item = clip_score(img, txt)
    cos = (img * txt).sum(1) / np.linalg.norm(img, axis=1) / np.linalg.norm(txt, axis=1)
    assert per_item == pytest.approx(2.5 * np.maximum(cos, 0), abs=1e-12)
    assert corpus == pytest.approx(np.mean(per_item))
    assert clip_score(torch.tensor(img), torch.tensor(img), w=100)[0] == pytest.approx(100.0)
    with pytest.raises(ValueError):
        clip_score(img, txt[:5])
    with pytest.raises(ValueError):
        clip_score(img, rng.normal(size=(12, 9)))
