"""Tests of the VisDial-style dialogue generator (mmcourse.data.dialogue, §40.3)."""
import numpy as np
import pytest
import torch

from mmcourse.data.dialogue import (Answer, Vocab, answer_pool, candidates, make_dialogue,
                                    popular_answers, relevance, to_tensors)
from mmcourse.data.shapes import ShapesWorld

WORLD = ShapesWorld(seed=0, image_size=32)


@pytest.fixture(scope="module")
def dialogues():
    return [make_dialogue(s) for s in WORLD.scenes(40)]


def test_deterministic_and_answers_in_pool(dialogues):
    again = make_dialogue(WORLD.scene(3))
    assert [r.question for r in again.rounds] == [r.question for r in dialogues[3].rounds]
    texts = {a.text for a in answer_pool()}
    assert all(r.answer.text in texts for d in dialogues for r in d.rounds)
    assert all(len(d.rounds) == 8 and not d.rounds[0].needs_history for d in dialogues)


def test_history_questions_are_answered_about_the_focus(dialogues):
    share = np.mean([r.needs_history for d in dialogues for r in d.rounds])
    assert 0.3 < share < 0.6
    for d in dialogues:
        for prev, r in zip(d.rounds, d.rounds[1:]):
            if prev.question.startswith("what colour is the") and r.question == "what shape is it?":
                ref = prev.question[len("what colour is the "):-1]
                obj = next(o for o in d.scene.objects if o.shape == ref.split()[-1])
                assert ("shape", obj.shape) in r.answer.facts


def test_relevance():
    red = Answer("red", "colour", frozenset({("colour", "red")}))
    it_red = Answer("it is red", "colour", frozenset({("colour", "red")}))
    circle = ("shape", "circle")
    red_circle = Answer("a red circle", "object", frozenset({("colour", "red"), circle}))
    blue_circle = Answer("a blue circle", "object", frozenset({("colour", "blue"), circle}))
    assert relevance(it_red, red) == 1.0 and relevance(red, red_circle) == 0.5
    assert relevance(blue_circle, red_circle) == 0.0


def test_candidates():
    pool = answer_pool()
    kinds = np.array([a.kind for a in pool])
    truth = np.array([0, 5, len(pool) - 1])
    c = candidates(truth, kinds, np.array([3, 4, 5]), np.random.default_rng(0))
    assert c.shape == (3, 100)
    for row, t in zip(c, truth):
        assert len(set(row.tolist())) == 100 and t in row and {3, 4, 5} <= set(row.tolist())
        assert (kinds[row] == kinds[t]).sum() >= min(51, (kinds == kinds[t]).sum())
    with pytest.raises(ValueError, match="candidates from a pool"):
        candidates(truth, kinds[:50], np.array([1]), np.random.default_rng(0))


def test_tensors(dialogues):
    pool = answer_pool()
    vocab = Vocab([a.text for a in pool] + [t for d in dialogues
                                             for t in [d.caption] + [r.question for r in d.rounds]])
    data = to_tensors(dialogues, vocab, pool, popular_answers(dialogues), seed=0)
    N = 40 * 8
    assert data.questions.shape[0] == N and data.candidates.shape == (N, 100)
    assert torch.equal(data.candidates[torch.arange(N), data.truth], data.answers)
    assert (data.relevance[torch.arange(N), data.truth] == 1).all()
    assert data.fact_mask.sum(1).tolist() == [t + 1 for t in data.round.tolist()]
    assert vocab.decode(data.history[1]).startswith(dialogues[0].caption.replace(",", " ,"))
    sub = data.select(data.needs_history)
    assert len(sub) == int(data.needs_history.sum())
    with pytest.raises(ValueError, match="same number of rounds"):
        to_tensors(dialogues[:1] + [make_dialogue(WORLD.scene(50), rounds=3)], vocab, pool, [], 0)
