"""mmcourse.metrics reproduces the pycocoevalcap scores stored in data/caption-reference-scores.json
(made by scripts/make_caption_reference.py), with no Java: the fallback check of §42.2."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.make_caption_reference import OUT, check_inputs, inputs_sha256  # noqa: E402

from mmcourse.metrics import bleu, cider_d, meteor, rouge_l  # noqa: E402

STORED = json.loads(OUT.read_text())
HAVE_COCO = importlib.util.find_spec("pycocoevalcap") is not None


@pytest.fixture(scope="module")
def inputs():
    return check_inputs(STORED["n"])


def _assert_close(name, ours):
    corpus, items = ours
    assert corpus == pytest.approx(STORED["scores"][name]["corpus"], abs=1e-9), name
    assert np.allclose(items, STORED["scores"][name]["items"], atol=1e-9, rtol=0), name


def test_the_inputs_are_regenerated_exactly(inputs):
    assert len(inputs[0]) == STORED["n"] == 300
    assert inputs_sha256(*inputs) == STORED["inputs_sha256"]
    assert OUT.stat().st_size < 50_000


def test_bleu_rouge_cider_reproduce_the_stored_scores(inputs):
    corpus, items = bleu(*inputs)
    for n in range(4):
        _assert_close(f"BLEU-{n + 1}", (corpus[n], [item[n] for item in items]))
    _assert_close("ROUGE-L", rouge_l(*inputs))
    _assert_close("CIDEr-D", cider_d(*inputs))


def test_meteor_exact_and_stem_reproduces_the_jar_without_any_data_files(inputs):
    _assert_close("METEOR (exact, stem)", meteor(*inputs, modules=("exact", "stem")))


@pytest.mark.skipif(not HAVE_COCO, reason="needs pycocoevalcap's synonym and paraphrase data")
def test_full_meteor_reproduces_the_stored_jar_scores(inputs):
    _assert_close("METEOR", meteor(*inputs))
    assert STORED["scores"]["METEOR"]["corpus"] > STORED["scores"]["METEOR (exact, stem)"]["corpus"]
