"""Web-like noisy pairs (mmcourse.data.noise) and LLaVA-style instruction data
(mmcourse.data.visual_instructions), §40.7."""
import numpy as np
import pytest

from mmcourse.data.noise import BOILERPLATE, KINDS, jitter, truncate, web_corpus, wrong_attribute
from mmcourse.data.shapes import COLORS, SHAPES, ShapesWorld
from mmcourse.data.visual_instructions import (LLAVA_KINDS, complex_reasoning, detailed_description,
                                               llava_examples, symbolic_context)

SCENES = ShapesWorld(seed=0).scenes(40)


def test_wrong_attribute_changes_exactly_one_colour_or_shape_word():
    rng = np.random.default_rng(0)
    for scene in SCENES:
        caption = scene.captions[0]
        wrong = wrong_attribute(caption, rng)
        diff = [(a, b) for a, b in zip(caption.split(" "), wrong.split(" ")) if a != b]
        assert len(caption.split(" ")) == len(wrong.split(" ")) and len(diff) == 1
        old, new = (w.strip(",:") for w in diff[0])
        assert old != new and ({old, new} <= set(COLORS) or {old, new} <= set(SHAPES))
    with pytest.raises(ValueError, match="colour or a shape"):
        wrong_attribute("an image", rng)


def test_truncate_keeps_a_strict_prefix():
    rng = np.random.default_rng(1)
    for scene in SCENES:
        cut = truncate(scene.captions[1], rng)
        assert scene.captions[1].startswith(cut) and 1 <= len(cut.split(" ")) <= 2


def test_jitter_is_a_shifted_noisy_copy():
    rng = np.random.default_rng(2)
    image = SCENES[3].image
    copy = jitter(image, rng, noise=0.0)
    assert copy.shape == image.shape and copy.dtype == np.uint8 and not np.array_equal(copy, image)
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
              if np.array_equal(np.roll(image, (dy, dx), (0, 1))[3:-3, 3:-3], copy[3:-3, 3:-3])]
    assert shifts and all(dy != 0 and dx != 0 for dy, dx in shifts)
    with pytest.raises(ValueError, match="H, W, 3"):
        jitter(image[..., 0], rng)


def test_web_corpus_has_the_requested_rates_and_duplicates():
    rates = {"swapped": 0.25, "wrong attribute": 0.1, "boilerplate": 0.1, "truncated": 0.05}
    corpus = web_corpus(SCENES, rates, duplicates=0.1, seed=3)
    assert len(corpus) == 44 and corpus.images.shape == (44, 64, 64, 3)
    kinds = corpus.kinds[:40]
    assert [kinds.count(k) for k in KINDS] == [20, 10, 4, 4, 2]
    for k, kind in enumerate(kinds):
        caption, own = corpus.captions[k], SCENES[k].captions
        assert (caption in own) == (kind == "clean") or kind == "swapped"
        assert (caption in BOILERPLATE) == (kind == "boilerplate")
    copies = corpus.duplicate_of[40:]
    assert (corpus.duplicate_of[:40] == -1).all() and len(set(copies)) == 4
    assert all(corpus.captions[40 + i] in SCENES[c].captions for i, c in enumerate(copies))
    assert (corpus.scene[40:] == copies).all() and corpus.clean.sum() == 24
    same = web_corpus(SCENES, rates, duplicates=0.1, seed=3)
    assert same.captions == corpus.captions and np.array_equal(same.images, corpus.images)
    with pytest.raises(ValueError, match="unknown corruption"):
        web_corpus(SCENES, {"typos": 0.1})
    with pytest.raises(ValueError, match="summing to at most 1"):
        web_corpus(SCENES, {"swapped": 0.7, "truncated": 0.6})


def test_llava_examples_follow_the_scene():
    rng = np.random.default_rng(4)
    for scene in SCENES[:10]:
        context = symbolic_context(scene)
        assert context.count("[") == len(scene.objects) and scene.captions[0] in context
        examples = llava_examples(scene, rng)
        assert tuple(examples) == LLAVA_KINDS
        assert all(answer == next(q.answer for q in scene.qa if q.question == question)
                   for question, answer in examples["conversation"])
        description = detailed_description(scene)
        assert all(f"{o.size} {o.color} {o.shape}" in description for o in scene.objects)
        question, answer = complex_reasoning(scene, rng)
        if question.startswith("if every"):
            color = question.split()[2]
            left = sum(o.color != color for o in scene.objects)
            assert answer.startswith(("zero", "one", "two", "three", "four")[left] + ".")
