"""Caption metrics against pycocoevalcap 1.2: the PTB tokenizer (Java), BLEU, ROUGE-L, CIDEr-D and
METEOR 1.5 (Java); SPICE on ShapesWorld against the scene graphs. Java calls are batched (each
costs about a second) and skipped cleanly without Java."""
import random
import shutil

import numpy as np
import pytest

from mmcourse.data.shapes import ShapesWorld
from mmcourse.metrics import bleu, cider_d, meteor, ptb_tokenize, ptb_tokenize_lines, rouge_l, spice
from mmcourse.metrics.caption import scene_graph_tuples, shapes_caption_graph, snowball_stem

try:  # the reference implementation (and the jars' data files)
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
except ImportError:
    Bleu = Cider = Rouge = None

needs_coco = pytest.mark.skipif(Bleu is None, reason="needs pycocoevalcap")
needs_java = pytest.mark.skipif(Bleu is None or shutil.which("java") is None,
                                reason="needs Java and pycocoevalcap for the jars")

# COCO-style raw captions (capitals, final periods, commas, contractions, numbers, brackets ...)
RAW = [
    "A man riding a wave on top of a surfboard.", "Two dogs playing with a frisbee in the grass!",
    "A dog's toy isn't on the couch; it's under the table.", "People can't see the 3 red buses...",
    "A \"double-decker\" bus (red) drives down the street", "It costs $5.00, or 10% off -- wow?!",
    "The U.S. flag flies at 5 p.m. The end.", "Mr. Smith and Dr. Jones visit St. Paul etc.",
    "A cat.", "...", "", "  lots   of   spaces  ", "I'm gonna eat 1/2 of a pizza, 5 1/2 slices.",
    "She said 'hi' to the kids' teacher.", "A woman's umbrella -- black-and-white -- in the rain",
    "A sign reads: STOP!!! Don't go.", "rock'n'roll at the '90s party",
    "A [small] {red} <b>box</b>",
    "Email me@example.com or visit www.example.com", "A 2-year-old boy, 3.5 ft tall, plays",
    "\u201cQuoted\u201d text with \u2018single\u2019 quotes and an ellipsis\u2026",
    "An elephant-shaped cloud. A. B. C.", "Smiles :) everywhere ;-)", "x-ray, e-mail & AT&T",
]


def _coco_like(n: int, seed: int) -> list[str]:
    """Random captions from a COCO-like vocabulary with punctuation, numbers and contractions."""
    rng = random.Random(seed)
    words = ("a the man woman dog's cat two 3 red blue sitting on of in with next to tennis court "
             "pizza isn't don't it's they're 10 2.5 1,000 black-and-white T-shirt Mr. St. U.S. "
             "(small) [big] ... -- ; : , ! ? \" ' & and/or o'clock '90s well-being").split()
    lines = []
    for _ in range(n):
        toks = [rng.choice(words) for _ in range(rng.randint(1, 12))]
        toks = [t.capitalize() if rng.random() < 0.15 else t for t in toks]
        toks = [t + rng.choice(",.!?") if rng.random() < 0.1 else t for t in toks]
        lines.append(" ".join(toks) + rng.choice(["", ".", " .", "!", "?"]))
    return lines


def _java_ptb(lines: list[str]) -> list[str]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    out = PTBTokenizer().tokenize({"all": [{"caption": c} for c in lines]})
    return out["all"]


@needs_java
def test_ptb_tokenize_matches_the_java_tokenizer():
    lines = RAW + _coco_like(400, seed=0)
    java = _java_ptb(lines)
    ours = ptb_tokenize_lines(lines)
    mismatches = [(line, j, o) for line, j, o in zip(lines, java, ours) if j != o]
    assert not mismatches, mismatches[:5]


def test_ptb_tokenize_examples():
    assert ptb_tokenize("A man's dog isn't running (fast)!") == \
        "a man 's dog is n't running -lrb- fast -rrb-"
    assert ptb_tokenize("I cannot go, gonna stay.") == "i can not go gon na stay"
    assert ptb_tokenize("The U.S. flag at 5 p.m.") == "the u.s. flag at 5 p.m."
    assert ptb_tokenize("...!?") == "!?"
    # a rule looks past the end of the line: "B." before "The" is a sentence end
    assert ptb_tokenize_lines(["Plan B.", "The end"]) == ["plan b", "the end"]
    assert ptb_tokenize_lines(["Plan B.", "the end"]) == ["plan b.", "the end"]


def _coco(candidates, references):
    """pycocoevalcap's scorers on already tokenised captions."""
    gts = {i: list(r) for i, r in enumerate(references)}
    res = {i: [c] for i, c in enumerate(candidates)}
    b, b_items = Bleu(4).compute_score(gts, res, verbose=0)
    r, r_items = Rouge().compute_score(gts, res)
    c, c_items = Cider().compute_score(gts, res)
    return (b, np.array(b_items).T), (r, r_items), (c, c_items)


def _assert_same(candidates, references, tokenize=False, reference_inputs=None):
    inputs = reference_inputs or (candidates, references)
    (b, b_items), (r, r_items), (c, c_items) = _coco(*inputs)
    ours_b, ours_b_items = bleu(candidates, references, tokenize=tokenize)
    assert ours_b == pytest.approx(b, abs=1e-9) and np.allclose(ours_b_items, b_items, atol=1e-9)
    ours_r, ours_r_items = rouge_l(candidates, references, tokenize=tokenize)
    assert ours_r == pytest.approx(r, abs=1e-9) and np.allclose(ours_r_items, r_items, atol=1e-9)
    ours_c, ours_c_items = cider_d(candidates, references, tokenize=tokenize)
    assert ours_c == pytest.approx(c, abs=1e-9) and np.allclose(ours_c_items, c_items, atol=1e-9)


EDGE = [  # (candidate, references), already tokenised
    ("", ["a red circle", "the red circle"]),  # empty candidate
    ("a a a a a a a", ["a red circle"]),  # repeated words, clipped counts
    ("3 blue squares and 2 red 1", ["three blue squares", "3 blue squares"]),  # numbers
    ("a small red circle to the left of a large blue square above a green star",
     ["a red circle", "a small red circle"]),  # much longer than the references
    ("circle", ["a small red circle left of a blue square"]),  # much shorter
    ("zebra giraffe elephant", ["a red circle", "a blue square"]),  # no overlap
    ("-lrb- red -rrb-", ["red", ""]),  # an empty reference, bracket tokens
    ("the  cat", ["the cat sat", "cat"]),  # double space: ROUGE's split(" ") keeps an empty token
]


@needs_coco
def test_bleu_rouge_cider_match_pycocoevalcap_on_edge_cases():
    cands, refs = zip(*EDGE)
    _assert_same(list(cands), [list(r) for r in refs])


@needs_coco
def test_single_image_corpus_and_random_corpora():
    _assert_same(["a red circle"], [["a red circle", "a blue square"]])  # CIDEr-D: idf 0 -> 0
    assert cider_d(["a red circle"], [["a red circle"]])[0] == 0.0
    rng = random.Random(0)
    vocab = "a the red blue green circle square star left of above and two".split()
    for trial in range(5):
        n = rng.randint(2, 40)
        cands = [" ".join(rng.choices(vocab, k=rng.randint(0, 12))) for _ in range(n)]
        refs = [[" ".join(rng.choices(vocab, k=rng.randint(1, 12)))
                 for _ in range(rng.randint(1, 5))] for _ in range(n)]
        _assert_same(cands, refs)


@needs_coco
def test_bleu_max_n_and_shapesworld_corpus():
    world = ShapesWorld(seed=0)
    scenes = world.scenes(40)
    cands = [s.captions[0] for s in scenes]
    refs = [s.captions[1:] for s in scenes]
    tok_c, tok_r = ptb_tokenize_lines(cands), [ptb_tokenize_lines(r) for r in refs]
    _assert_same(tok_c, tok_r)
    two, two_items = bleu(tok_c, tok_r, max_n=2, tokenize=False)
    four, four_items = bleu(tok_c, tok_r, tokenize=False)
    assert two == pytest.approx(four[:2]) and np.allclose(np.array(four_items)[:, :2], two_items)


@needs_java
def test_full_pipeline_on_raw_captions_matches_pycocoevalcap():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    rng = random.Random(3)
    cands = RAW[:]
    refs = [rng.sample(RAW, 4) for _ in cands]
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": c} for c in r] for i, r in enumerate(refs)})
    res = tokenizer.tokenize({i: [{"caption": c}] for i, c in enumerate(cands)})
    reference_inputs = ([res[i][0] for i in range(len(cands))], [gts[i] for i in range(len(cands))])
    _assert_same(cands, refs, tokenize=True, reference_inputs=reference_inputs)


SHAPES_AND_COCO = (
    ["a picture of a large green circle", "an image showing two red squares",
     "A man is riding a horse.", "a little blue cross to the left of a star",
     "the big yellow star", "someone on a surfboard"],
    [["an image of a big green circle", "a large green circle"], ["a picture of two red squares"],
     ["A person rides a horse.", "A man on horseback."],
     ["a small blue cross left of a yellow star"],
     ["a large yellow star on a dark background"],
     ["a person surfing on a wave", "a surfer riding a wave"]],
)
# the official jar's METEOR 1.5 on SHAPES_AND_COCO (pycocoevalcap's Meteor, all four modules)
JAR_METEOR = (0.3720308337471372, [0.8533333333333334, 0.38247153741897855, 0.3860112511037072,
                                   0.42300313908489595, 0.24904219990401072, 0.2637865304083784])


@needs_java
def test_meteor_matches_the_jar_without_paraphrases():
    world = ShapesWorld(seed=1)
    scenes = world.scenes(25, "val")
    cands = [s.captions[k % 5] for k, s in enumerate(scenes)] + SHAPES_AND_COCO[0] + ["", "..."]
    refs = [s.captions[:k % 5] + s.captions[k % 5 + 1:] for k, s in enumerate(scenes)]
    refs += SHAPES_AND_COCO[1] + [["a red square"], ["a b"]]
    modules = ("exact", "stem", "synonym")
    jar_corpus, jar_items = meteor(cands, refs, backend="jar", modules=modules)
    corpus, items = meteor(cands, refs, modules=modules)
    assert corpus == pytest.approx(jar_corpus, abs=1e-9)
    assert np.allclose(items, jar_items, atol=1e-9)


@needs_coco
def test_meteor_with_paraphrases_reproduces_recorded_jar_scores():
    corpus, items = meteor(*SHAPES_AND_COCO)
    assert corpus == pytest.approx(JAR_METEOR[0], abs=1e-9)
    assert np.allclose(items, JAR_METEOR[1], atol=1e-9)
    exact_only, _ = meteor(*SHAPES_AND_COCO, modules=("exact",))
    assert exact_only < corpus  # "a picture of" / "an image of" only match as paraphrases
    assert meteor(["a red circle"], [["a red circle"]])[1] == [1.0]  # no fragmentation penalty
    two_chunks = meteor(["red circle a"], [["a red circle"]])[1][0]  # chunks "red circle", "a"
    assert two_chunks == pytest.approx(1 - 0.6 * (2 / 3) ** 0.2)


def test_snowball_stemmer_examples():
    pairs = {"running": "run", "caresses": "caress", "ponies": "poni", "ties": "tie",
             "generously": "generous", "skies": "sky", "dying": "die", "hopping": "hop",
             "conflated": "conflat", "happily": "happili", "consolation": "consol",
             "knightly": "knight", "agreed": "agre", "communism": "communism", "squares": "squar"}
    assert {w: snowball_stem(w) for w in pairs} == pairs


def test_spice_on_shapesworld():
    world = ShapesWorld(seed=0)
    scenes = world.scenes(30)
    for scene in scenes:  # every caption describes the scene: its tuples are in the scene graph
        truth = scene_graph_tuples(scene.graph)
        for caption in scene.captions:
            assert shapes_caption_graph(caption) <= truth, caption
    cands = [s.captions[0] for s in scenes]
    assert spice(cands, [[c] for c in cands])[0] == 1.0
    wrong = [c.replace("red", "green") if "red" in c else c.replace("green", "red") for c in cands]
    refs = [s.captions for s in scenes]
    assert spice(wrong, refs)[0] < spice(cands, refs)[0]
    assert 0 < spice(cands, graphs=[s.graph for s in scenes])[0] < 1
    assert shapes_caption_graph("a tiny red star to the left of a big blue circle") == {
        ("star",), ("star", "red"), ("star", "small"), ("circle",), ("circle", "blue"),
        ("circle", "large"), ("star", "left of", "circle")}
    assert spice(["nothing here"], [["a red star"]])[1] == [0.0]


@pytest.mark.parametrize("cands,refs", [
    (["a"], [["a"], ["b"]]),  # lengths differ
    (["a"], [[]]),  # no reference
    ([], []),
    ("a", [["a"]]),  # a str, not a list
    (["a"], [[None]]),
])
def test_bad_input_raises(cands, refs):
    for metric in (bleu, rouge_l, cider_d):
        with pytest.raises(ValueError):
            metric(cands, refs)


def test_meteor_align_returns_matches_and_chunks():
    from mmcourse.metrics import meteor_align

    words = "a red circle above a blue square".split()
    matches, chunks = meteor_align(words, words, modules=("exact",))
    assert chunks == 1 and [m[1] for m in matches] == [1] * len(words)
    swapped = "a blue square above a red circle".split()
    matches, chunks = meteor_align(swapped, words, modules=("exact", "stem"))
    assert sum(m[3] for m in matches) == len(words) and chunks == 3
    with pytest.raises(ValueError, match="unknown METEOR modules"):
        meteor_align(words, words, modules=("exact", "typo"))
