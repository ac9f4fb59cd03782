"""VisDial-style dialogues about ShapesWorld scenes, with 100 candidate answers per round.

Each dialogue has the scene's caption and ``rounds`` question-answer rounds. Some questions need
only the image ("how many objects are there?"); others resolve a pronoun or an ellipsis only
through the history ("what colour is it?", "and the square?", "and the other one?"). Every answer
is a free-form sentence with paraphrases ("yes" / "yes it is"), and states a set of *facts*
(``("colour", "red")``); the dense relevance of a candidate answer is the Jaccard overlap of its
facts with the true answer's, so paraphrases are fully relevant and half-answers half.

Candidates are built as VisDial builds them: the true answer, plausible answers (those of the same
answer kind), the most popular answers, and random ones, 100 in all. Built in §40.3.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from .shapes import COLORS, NUMBER_WORDS, SHAPES, Scene, ShapeObject, _article, referring_expression

#: answer kinds; "plausible" candidates of a round are answers of its kind
ANSWER_KINDS: tuple[str, ...] = ("colour", "shape", "size", "yes/no", "count", "where", "object")
WHERE: tuple[str, ...] = ("left", "middle", "right")
#: how often each paraphrase of an answer is chosen (the first form is the most common)
FORM_WEIGHTS: tuple[float, ...] = (0.6, 0.25, 0.15)
SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<sep>")


@dataclass(frozen=True)
class Answer:
    """A free-form answer: its ``text``, its ``kind`` (one of ANSWER_KINDS) and the ``facts`` it
    states, e.g. ``frozenset({("colour", "red"), ("shape", "circle")})``."""

    text: str
    kind: str
    facts: frozenset


@dataclass(frozen=True)
class Round:
    """One round: the question, its answer, and whether the question needs the history
    (a pronoun or an ellipsis that only earlier rounds resolve)."""

    question: str
    answer: Answer
    needs_history: bool


@dataclass
class Dialogue:
    """A dialogue about ``scene``: the caption (the history's round 0) and the rounds."""

    scene: Scene
    caption: str
    rounds: list[Round]


# ---------------------------------------------------------------------- answers and their forms
def _forms(kind: str, value, question_kind: str = "") -> list[tuple[str, frozenset]]:
    """All paraphrases of one answer, most common first, with the facts they state."""
    if kind == "colour":
        texts = (value, f"it is {value}", f"it's {value}")
        return [(t, frozenset({("colour", value)})) for t in texts]
    if kind == "shape":
        texts = (f"a {value}", f"it is a {value}", value)
        return [(t, frozenset({("shape", value)})) for t in texts]
    if kind == "size":
        texts = (value, f"it is {value}", f"it's {value}")
        return [(t, frozenset({("size", value)})) for t in texts]
    if kind == "yes/no":
        tail = {"yes": ("yes it is", "yes there is"),
                "no": ("no it is not", "no there is not")}[value]
        second = tail[1] if question_kind == "existence" else tail[0]
        slang = {"yes": "yep", "no": "nope"}[value]
        return [(t, frozenset({("answer", value)})) for t in (value, second, slang)]
    if kind == "count":
        word = NUMBER_WORDS[value]
        verb = "is" if value == 1 else "are"
        texts = (word, f"there {verb} {word}", f"{word} object" + ("" if value == 1 else "s"))
        return [(t, frozenset({("count", value)})) for t in texts]
    if kind == "where":
        side = {"left": "on the left", "middle": "in the middle", "right": "on the right"}[value]
        return [(t, frozenset({("where", value)})) for t in (side, f"it is {side}", value)]
    if kind == "object":
        color, shape = value
        facts = frozenset({("colour", color), ("shape", shape)})
        named = f"{_article(color)} {color} {shape}"
        return [(t, facts) for t in (named, f"it is {named}",
                                     f"{color} {shape}")]
    raise ValueError(f"unknown answer kind {kind!r}; expected one of {ANSWER_KINDS}")


def answer_pool(colors: tuple[str, ...] = tuple(COLORS),
                shapes: tuple[str, ...] = SHAPES) -> list[Answer]:
    """Every answer the generator can give (a fixed, ordered list): the candidate pool."""
    values = {
        "colour": list(colors), "shape": list(shapes), "size": ["small", "large"],
        "yes/no": ["yes", "no"], "count": [1, 2, 3, 4], "where": list(WHERE),
        "object": [(c, s) for c in colors for s in shapes],
    }
    pool, seen = [], set()
    for kind in ANSWER_KINDS:
        for value in values[kind]:
            for q_kind in (("existence", "property") if kind == "yes/no" else ("",)):
                for text, facts in _forms(kind, value, q_kind):
                    if text not in seen:
                        seen.add(text)
                        pool.append(Answer(text, kind, facts))
    return pool


def relevance(candidate: Answer, truth: Answer) -> float:
    """Dense relevance of ``candidate`` to the true answer: 0 if it contradicts the truth (states
    another value for one of its keys, "a blue circle" for "a blue star"), else the Jaccard overlap
    of their facts: 1 for a paraphrase, 0.5 for "blue" when the truth is "a blue star"."""
    said = dict(truth.facts)
    if any(key in said and said[key] != value for key, value in candidate.facts):
        return 0.0
    union = candidate.facts | truth.facts
    return len(candidate.facts & truth.facts) / len(union) if union else 0.0


# ---------------------------------------------------------------------- the generator
def _where(o: ShapeObject, image_size: int) -> str:
    x = o.center[0] / image_size
    return "left" if x < 0.4 else "right" if x > 0.6 else "middle"


def _answer(rng: np.random.Generator, kind: str, value, question_kind: str = "") -> Answer:
    forms = _forms(kind, value, question_kind)
    text, facts = forms[rng.choice(len(forms), p=FORM_WEIGHTS)]
    return Answer(text, kind, facts)


def _ellipsis_targets(objects: list[ShapeObject], focus: int, last_attr: str | None
                      ) -> list[tuple[int, str]]:
    """(object, question) pairs for an ellipsis after a question about ``last_attr`` of the
    focus: "and the <name>?" for each other object with an unambiguous name that does not give the
    attribute away, and "and the other one?" in a two-object scene."""
    if last_attr is None or len(objects) < 2:
        return []
    others = [k for k in range(len(objects)) if k != focus]
    if len(objects) == 2:
        return [(others[0], "and the other one?")]
    use = {"colour": dict(use_color=False), "shape": dict(use_shape=False), "size": {}}[last_attr]
    named = [(k, referring_expression(objects[k], objects, **use)) for k in others]
    if last_attr == "size":  # a name with the size in it would give the answer away
        named = [(k, r) for k, r in named
                 if r is not None and "small" not in r and "large" not in r]
    return [(k, f"and the {r}?") for k, r in named if r is not None]


def make_dialogue(scene: Scene, rounds: int = 8, seed: int = 0,
                  p_history: float = 0.55) -> Dialogue:
    """A dialogue of ``rounds`` rounds about ``scene`` (deterministic in ``seed`` and the scene).

    Image-only questions ask a count, an existence, the colour or shape of an object named
    unambiguously, or the leftmost/rightmost object; each that names an object makes it the
    *focus*. With probability ``p_history`` (once there is a focus) the next question refers to it:
    "what colour is it?", "is it large?", "where is it?", "and the <other object>?" (the last
    attribute asked, of another object) or, in two-object scenes, "and the other one?".
    """
    if rounds < 1:
        raise ValueError(f"rounds must be a positive int; got {rounds!r}")
    objects, size = scene.objects, scene.image.shape[0]
    rng = np.random.default_rng([seed, {"train": 0, "val": 1, "test": 2, "heldout": 3}[scene.split],
                                 scene.index])
    out: list[Round] = []
    focus: int | None = None
    last_attr: str | None = None  # the attribute the last question asked: colour, shape, size
    for _ in range(rounds):
        if focus is not None and rng.random() < p_history:
            o = objects[focus]
            targets = _ellipsis_targets(objects, focus, last_attr)
            options = ["what colour is it?", "what shape is it?", "size", "where is it?"]
            pick = int(rng.integers(len(options) + bool(targets)))
            choice = options[pick] if pick < len(options) else "ellipsis"
            if choice == "ellipsis":  # the last attribute asked, of another object
                focus, question = targets[rng.integers(len(targets))]
                o = objects[focus]
                value = {"colour": o.color, "shape": o.shape, "size": o.size}[last_attr]
                out.append(Round(question, _answer(rng, last_attr, value), True))
            elif choice == "size":
                asked = ("small", "large")[rng.integers(2)]
                last_attr = "size"
                if rng.random() < 0.5:
                    ans = _answer(rng, "yes/no", "yes" if o.size == asked else "no", "property")
                    out.append(Round(f"is it {asked}?", ans, True))
                else:
                    out.append(Round("what size is it?", _answer(rng, "size", o.size), True))
            elif choice == "where is it?":
                out.append(Round(choice, _answer(rng, "where", _where(o, size)), True))
            else:
                last_attr = choice.split()[1]  # "colour" or "shape"
                value = o.color if last_attr == "colour" else o.shape
                out.append(Round(choice, _answer(rng, last_attr, value), True))
            continue
        kind = rng.integers(5)
        if kind == 0:
            count = _answer(rng, "count", len(objects))
            out.append(Round("how many objects are there?", count, False))
        elif kind == 1:
            k = int(rng.integers(len(objects)))
            if rng.random() < 0.5:
                color, shape = objects[k].color, objects[k].shape
            else:
                present = {(o.color, o.shape) for o in objects}
                absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
                color, shape = absent[rng.integers(len(absent))]
            exists = any(o.color == color and o.shape == shape for o in objects)
            ans = _answer(rng, "yes/no", "yes" if exists else "no", "existence")
            out.append(Round(f"is there {_article(color)} {color} {shape}?", ans, False))
            if exists:
                focus = next(j for j, o in enumerate(objects)
                             if (o.color, o.shape) == (color, shape))
                last_attr = None
        elif kind in (2, 3):
            attr = ("colour", "shape")[kind - 2]
            use = dict(use_color=False) if attr == "colour" else dict(use_shape=False)
            named = [(k, referring_expression(o, objects, **use)) for k, o in enumerate(objects)]
            named = [(k, r) for k, r in named if r is not None]
            if not named:
                out.append(Round("how many objects are there?", _answer(rng, "count", len(objects)),
                                 False))
                continue
            k, ref = named[rng.integers(len(named))]
            value = objects[k].color if attr == "colour" else objects[k].shape
            out.append(Round(f"what {attr} is the {ref}?", _answer(rng, attr, value), False))
            focus, last_attr = k, attr
        else:
            side = ("leftmost", "rightmost")[rng.integers(2)]
            sign = 1 if side == "leftmost" else -1
            k = min(range(len(objects)), key=lambda j: objects[j].center[0] * sign)
            o = objects[k]
            question = (f"what is the {side} object?" if len(objects) > 1
                        else "what is in the picture?")
            out.append(Round(question, _answer(rng, "object", (o.color, o.shape)), False))
            focus, last_attr = k, None
    return Dialogue(scene, scene.captions[0], out)


# ---------------------------------------------------------------------- candidates and tensors
def popular_answers(dialogues: list[Dialogue], n: int = 30) -> list[str]:
    """The ``n`` most frequent answer texts of ``dialogues`` (ties broken alphabetically)."""
    counts = Counter(r.answer.text for d in dialogues for r in d.rounds)
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def candidates(truth: np.ndarray, kinds: np.ndarray, popular: np.ndarray, rng: np.random.Generator,
               num: int = 100, plausible: int = 50) -> np.ndarray:
    """``num`` candidate answers (indices into the pool) for each of N rounds whose answers are
    the pool items ``truth`` (N,), as VisDial builds them: the true answer, up to ``plausible``
    answers of the same kind (``kinds`` (P,) holds each pool answer's kind), the ``popular``
    answers (pool indices, most popular first), then random answers; each row in random order.
    Returns (N, num)."""
    P = len(kinds)
    if num > P:
        raise ValueError(f"asked for {num} candidates from a pool of only {P} answers")
    truth = np.asarray(truth).reshape(-1)
    u = rng.random((len(truth), P))  # (N, P): random keys
    is_truth = np.arange(P)[None, :] == truth[:, None]
    same = (kinds[None, :] == kinds[truth][:, None]) & ~is_truth
    # (N, P): the order of each answer among those of the same kind
    same_rank = np.argsort(np.argsort(np.where(same, u, 2.0), axis=1), axis=1)
    pop_rank = np.full(P, P, dtype=np.float64)
    pop_rank[popular] = np.arange(len(popular))
    priority = np.where(is_truth, 0.0,
                        np.where(same & (same_rank < plausible), 1.0 + u,
                                 np.where(pop_rank[None, :] < P, 2.0 + pop_rank[None, :] / P,
                                          3.0 + u)))
    chosen = np.argsort(priority, axis=1)[:, :num]  # (N, num), the true answer first
    shuffle = np.argsort(rng.random(chosen.shape), axis=1)
    return np.take_along_axis(chosen, shuffle, axis=1)


class Vocab:
    """Word-level vocabulary over every text of the dialogues and the answer pool; ids 0..3 are
    ``<pad>``, ``<bos>``, ``<eos>``, ``<sep>``."""

    def __init__(self, texts: list[str]) -> None:
        words = sorted({w for t in texts for w in _words(t)})
        self.itos = list(SPECIALS) + words
        self.stoi = {w: k for k, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, length: int, bos: bool = False, eos: bool = False) -> list[int]:
        """Token ids of ``text`` padded with 0 to ``length`` (ValueError if it does not fit)."""
        ids = [1] * bos + [self.stoi[w] for w in _words(text)] + [2] * eos
        if len(ids) > length:
            raise ValueError(f"{text!r} has {len(ids)} tokens, more than length={length}")
        return ids + [0] * (length - len(ids))

    def attribute_ids(self) -> tuple[int, ...]:
        """The ids of the words naming object attributes, in the order of :func:`object_features`:
        the 6 colours, the 5 shapes, then "small" and "large"."""
        return tuple(self.stoi[w] for w in (*COLORS, *SHAPES, "small", "large"))

    def decode(self, ids) -> str:
        """The words of ``ids`` up to the first ``<eos>``, without specials."""
        out = []
        for i in ids:
            if int(i) == 2:
                break
            if int(i) > 3:
                out.append(self.itos[int(i)])
        return " ".join(out)


def _words(text: str) -> list[str]:
    return text.replace("?", " ?").replace(",", " ,").split()


@dataclass
class VisDialData:
    """Dialogues as tensors, one row per round (N = dialogues x rounds).

    objects (N, 4, 14): colour one-hot, shape one-hot, "is large", centre x and y in [0, 1];
    object_mask (N, 4); questions (N, Lq); history (N, Lh): caption and earlier rounds concatenated,
    separated by ``<sep>``; facts (N, R + 1, Lf): caption, then "question answer" of every round;
    fact_mask (N, R + 1): True for the facts before this round; answers (N,): the true answer's
    index into the pool; candidates (N, 100) and relevance (N, 100); truth (N,): the true answer's
    position among the candidates; needs_history (N,); dialogue (N,) and round (N,) indices.
    """

    objects: torch.Tensor
    object_mask: torch.Tensor
    questions: torch.Tensor
    history: torch.Tensor
    facts: torch.Tensor
    fact_mask: torch.Tensor
    answers: torch.Tensor
    candidates: torch.Tensor
    relevance: torch.Tensor
    truth: torch.Tensor
    needs_history: torch.Tensor
    dialogue: torch.Tensor
    round: torch.Tensor

    def __len__(self) -> int:
        return len(self.answers)

    def select(self, index: torch.Tensor) -> "VisDialData":
        """The rows ``index`` (a LongTensor or bool mask) of every field."""
        return VisDialData(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def object_features(scene: Scene, max_objects: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The scene's objects as features (max_objects, 14) and a mask (max_objects,)."""
    colors, shapes = list(COLORS), list(SHAPES)
    feats = torch.zeros(max_objects, len(colors) + len(shapes) + 3)
    size = scene.image.shape[0]
    for k, o in enumerate(scene.objects):
        feats[k, colors.index(o.color)] = 1
        feats[k, len(colors) + shapes.index(o.shape)] = 1
        feats[k, -3:] = torch.tensor([float(o.size == "large"), o.center[0] / size,
                                      o.center[1] / size])
    return feats, torch.arange(max_objects) < len(scene.objects)


def to_tensors(dialogues: list[Dialogue], vocab: Vocab, pool: list[Answer], popular: list[str],
               seed: int = 0, num_candidates: int = 100) -> VisDialData:
    """Turn ``dialogues`` (all with the same number of rounds) into :class:`VisDialData`."""
    rounds = {len(d.rounds) for d in dialogues}
    if len(rounds) != 1:
        raise ValueError(f"expected dialogues with the same number of rounds, got {sorted(rounds)}")
    R = rounds.pop()
    rng = np.random.default_rng(seed)
    index = {a.text: k for k, a in enumerate(pool)}
    kinds = np.array([a.kind for a in pool])
    popular_ids = np.array([index[t] for t in popular], dtype=np.int64)
    rel = np.array([[relevance(c, t) for c in pool] for t in pool], dtype=np.float32)  # (P, P)
    fact_texts = [[d.caption] + [f"{r.question} {r.answer.text}" for r in d.rounds]
                  for d in dialogues]
    Lq = max(len(_words(r.question)) for d in dialogues for r in d.rounds)
    Lf = max(len(_words(t)) for ft in fact_texts for t in ft)
    Lh = max(sum(len(_words(t)) + 1 for t in ft[:-1]) for ft in fact_texts)
    N = len(dialogues) * R
    out = {"questions": np.zeros((N, Lq), np.int64), "history": np.zeros((N, Lh), np.int64),
           "facts": np.zeros((N, R + 1, Lf), np.int64), "answers": np.zeros(N, np.int64),
           }
    objects, object_mask, needs_history = [], [], []
    for n, (d, ft) in enumerate(zip(dialogues, fact_texts)):
        feats, mask = object_features(d.scene)
        objects.append(feats.expand(R, -1, -1))
        object_mask.append(mask.expand(R, -1))
        facts = np.array([vocab.encode(t, Lf) for t in ft])  # (R + 1, Lf)
        history: list[int] = []
        for t, r in enumerate(d.rounds):
            row = n * R + t
            history += [i for i in facts[t] if i] + [3]  # fact t, then <sep>
            out["questions"][row] = vocab.encode(r.question, Lq)
            out["history"][row, : len(history)] = history
            out["facts"][row] = facts
            out["answers"][row] = index[r.answer.text]
            needs_history.append(r.needs_history)
    out["candidates"] = candidates(out["answers"], kinds, popular_ids, rng, num_candidates)
    t = {k: torch.from_numpy(v) for k, v in out.items()}
    rounds = torch.arange(N) % R
    return VisDialData(
        objects=torch.cat(objects), object_mask=torch.cat(object_mask), questions=t["questions"],
        history=t["history"], facts=t["facts"],
        fact_mask=torch.arange(R + 1)[None, :] <= rounds[:, None], answers=t["answers"],
        candidates=t["candidates"],
        relevance=torch.from_numpy(rel)[t["answers"][:, None], t["candidates"]],
        truth=(t["candidates"] == t["answers"][:, None]).float().argmax(1),
        needs_history=torch.tensor(needs_history), dialogue=torch.arange(N) // R, round=rounds)


@dataclass
class VisDialSet:
    """Everything §40.3 trains and scores on: the dialogues, the answer pool, the popular
    answers, the vocabulary, the tensors of both splits, and ``pool_ids`` (P, 7): every pool
    answer as ``<bos> words <eos>``, padded."""

    train_dialogues: list[Dialogue]
    test_dialogues: list[Dialogue]
    pool: list[Answer]
    popular: list[str]
    vocab: Vocab
    train: VisDialData
    test: VisDialData
    pool_ids: torch.Tensor


def make_visdial(num_train: int = 4000, num_test: int = 200, rounds: int = 8,
                 seed: int = 0) -> VisDialSet:
    """The §40.3 data set: ``num_train`` dialogues on train scenes and ``num_test`` on held-out
    test scenes of ``ShapesWorld(seed, image_size=32)``, ``rounds`` rounds each. The popular
    answers come from the first 1000 training dialogues, so the test candidates are the same for
    every ``num_train`` >= 1000 (the checkpoints of §40.3 were trained on more dialogues than the
    notebook makes)."""
    from .shapes import ShapesWorld

    world = ShapesWorld(seed=seed, image_size=32)
    train_dialogues = [make_dialogue(s, rounds) for s in world.scenes(num_train)]
    test_dialogues = [make_dialogue(s, rounds) for s in world.scenes(num_test, split="test")]
    pool = answer_pool()
    popular = popular_answers(train_dialogues[:1000])  # the same for every num_train >= 1000
    vocab = Vocab([a.text for a in pool] + [t for d in train_dialogues + test_dialogues
                                            for t in [d.caption] + [r.question for r in d.rounds]])
    pool_ids = torch.tensor([vocab.encode(a.text, 7, bos=True, eos=True) for a in pool])
    return VisDialSet(train_dialogues, test_dialogues, pool, popular, vocab,
                      to_tensors(train_dialogues, vocab, pool, popular, seed=1),
                      to_tensors(test_dialogues, vocab, pool, popular, seed=2), pool_ids)
