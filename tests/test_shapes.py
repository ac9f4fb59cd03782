"""ShapesWorld: determinism, splits, pixels that agree with the annotations, QA that is right."""
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from mmcourse.data.shapes import (COLORS, HELDOUT_COMBOS, SHAPES, SPLITS, ShapesWorld, _draw_shape, plural,
                                  relation, to_tensor)

WORLD = ShapesWorld(seed=0)
SINGULAR = {plural(s): s for s in SHAPES}


def test_same_seed_and_index_give_identical_scenes():
    a, b = ShapesWorld(seed=3).scene(17, "val"), ShapesWorld(seed=3).scene(17, "val")
    assert np.array_equal(a.image, b.image)
    assert a.captions == b.captions and a.qa == b.qa and a.objects == b.objects


def test_different_seeds_give_different_scenes():
    assert not np.array_equal(ShapesWorld(seed=1).scene(0).image, ShapesWorld(seed=2).scene(0).image)


def test_splits_never_share_a_scene():
    seen = {}
    for split in SPLITS:
        for i in range(400):
            key = WORLD.scene(i, split).image.tobytes()
            assert key not in seen, f"{split}[{i}] repeats {seen[key]}"
            seen[key] = (split, i)


def test_image_format_and_object_counts():
    for i in range(50):
        s = WORLD.scene(i)
        assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
        assert 1 <= len(s.objects) <= 4
        for o in s.objects:
            assert o.shape in SHAPES and o.color in COLORS and o.size in ("small", "large")
    small = ShapesWorld(seed=0, image_size=32).scene(0)
    assert small.image.shape == (32, 32, 3)


@pytest.mark.parametrize("image_size", [32, 64])
def test_boxes_contain_their_objects_pixels(image_size):
    world = ShapesWorld(seed=0, image_size=image_size)
    for i in range(100):
        s = world.scene(i)
        for o in s.objects:
            alone = Image.new("RGB", (image_size, image_size), (0, 0, 0))
            _draw_shape(ImageDraw.Draw(alone), o.shape, o.box, (255, 255, 255))
            ys, xs = np.nonzero(np.asarray(alone)[..., 0])
            x0, y0, x1, y1 = o.box
            assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
            # and the box is tight: the shape reaches (nearly) every side
            assert xs.min() - x0 <= 2 and x1 - 1 - xs.max() <= 2 and ys.min() - y0 <= 1 and y1 - 1 - ys.max() <= 2
            # the scene's pixels inside the box carry the object's colour
            patch = s.image[y0:y1, x0:x1].reshape(-1, 3)
            assert (patch == np.array(COLORS[o.color])).all(axis=1).sum() >= 0.2 * len(ys)


def test_connected_components_match_the_number_of_objects():
    for i in range(100):
        s = WORLD.scene(i)
        foreground = np.any(s.image != np.array(s.background, dtype=np.uint8), axis=-1)
        _, n = ndimage.label(foreground, structure=np.ones((3, 3)))
        assert n == len(s.objects)


def _find(scene, ref: str):
    """Objects matching a referring phrase such as 'large red circle', 'red object', 'circle'."""
    words = ref.replace(" object", "").split()
    return [o for o in scene.objects if all(w in (o.size, o.color, o.shape) for w in words)]


def _normalise(answer: str) -> str:
    a = answer.strip().lower().rstrip(".")
    words = ["zero", "one", "two", "three", "four", "five"]
    return str(words.index(a)) if a in words else a


def _expected_answer(scene, question: str) -> str:
    q = question.rstrip("?")
    if m := re.fullmatch(r"what colour is the (.+)", q):
        (o,) = _find(scene, m[1])
        return o.color
    if m := re.fullmatch(r"what shape is the (.+)", q):
        (o,) = _find(scene, m[1])
        return o.shape
    if q == "how many objects are there":
        return str(len(scene.objects))
    if (m := re.fullmatch(r"how many (\w+) are there", q)) and m[1] in SINGULAR:
        return str(sum(o.shape == SINGULAR[m[1]] for o in scene.objects))
    if m := re.fullmatch(r"how many (\w+) objects are there", q):
        return str(sum(o.color == m[1] for o in scene.objects))
    if m := re.fullmatch(r"is there a (\w+) (\w+)", q):
        return "yes" if any(o.color == m[1] and o.shape == m[2] for o in scene.objects) else "no"
    if m := re.fullmatch(r"is the (.+) (to the left of|to the right of|above|below) the (.+)", q):
        (a,), (b,) = _find(scene, m[1]), _find(scene, m[3])
        (ax, ay), (bx, by) = a.center, b.center
        holds = {"to the left of": ax < bx, "to the right of": ax > bx, "above": ay < by, "below": ay > by}[m[2]]
        return "yes" if holds else "no"
    raise AssertionError(f"unexpected question {question!r}")


def test_answers_match_the_scene():
    types = set()
    for split in ("train", "heldout"):
        for i in range(300):
            s = WORLD.scene(i, split)
            for qa in s.qa:
                assert qa.answer == _expected_answer(s, qa.question), (split, i, qa)
                assert len(qa.answers) == 10
                assert sum(_normalise(a) == qa.answer for a in qa.answers) >= 7  # at most 3 wrong
                types.add(qa.question_type)
    assert types == {"colour", "shape", "count", "existence", "relation"}


def test_existence_questions_are_balanced():
    answers = [qa.answer for i in range(1000) for qa in WORLD.scene(i).qa if qa.question_type == "existence"]
    assert 0.4 < answers.count("yes") / len(answers) < 0.6


def test_captions_mention_every_object():
    for i in range(100):
        s = WORLD.scene(i)
        assert len(s.captions) == 5 and len(set(s.captions)) == 5
        first = s.captions[0]
        for o in s.objects:
            assert f"{o.color} {o.shape}" in first


def test_scene_graph_relations_hold():
    for i in range(100):
        s = WORLD.scene(i)
        assert [n["name"] for n in s.graph["objects"]] == [o.shape for o in s.objects]
        for e in s.graph["relations"]:
            assert e["predicate"] in relation(s.objects[e["subject"]], s.objects[e["object"]], WORLD.margin)


def test_heldout_combinations_only_in_heldout_split():
    held = set(HELDOUT_COMBOS)
    for split in ("train", "val", "test"):
        for i in range(300):
            assert not {(o.color, o.shape) for o in WORLD.scene(i, split).objects} & held
    for i in range(100):
        assert {(o.color, o.shape) for o in WORLD.scene(i, "heldout").objects} & held


def test_spurious_background_follows_shape_in_train_only():
    world = ShapesWorld(seed=0, spurious=1.0)
    train = [world.scene(i) for i in range(200)]
    assert all(s.background == world.scene(i).background for i, s in enumerate(train))
    by_shape = {}
    for s in train:
        by_shape.setdefault(s.objects[0].shape, set()).add(s.background)
    assert all(len(v) == 1 for v in by_shape.values())
    test = [world.scene(i, "test") for i in range(200)]
    by_shape = {}
    for s in test:
        by_shape.setdefault(s.objects[0].shape, set()).add(s.background)
    assert any(len(v) > 1 for v in by_shape.values())


def test_noise_background_and_occlusion_knobs():
    clean = ShapesWorld(seed=0).scene(5).image
    noisy = ShapesWorld(seed=0, noise=0.1).scene(5).image
    assert 10 < np.abs(clean.astype(int) - noisy.astype(int)).mean() < 40
    for bg in ("tinted", "gradient", "texture"):
        assert ShapesWorld(seed=0, background=bg).scene(5).image.std() > 0
    overlapping = any(
        any(max(a.box[0], b.box[0]) < min(a.box[2], b.box[2]) and max(a.box[1], b.box[1]) < min(a.box[3], b.box[3])
            for a in s.objects for b in s.objects if a is not b)
        for s in ShapesWorld(seed=0, occlusion=True).scenes(200))
    assert overlapping


def test_to_tensor():
    x = to_tensor(WORLD.scenes(3))
    assert tuple(x.shape) == (3, 3, 64, 64) and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match=r"expected images of shape \(N, H, W, 3\)"):
        to_tensor(np.zeros((64, 64, 3)))


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(colors=("red", "pink")), r"unknown colour 'pink'; allowed values: 'red', 'green'"),
    (dict(shapes=("circle", "hexagon")), r"unknown shape 'hexagon'; allowed values: 'circle'"),
    (dict(image_size=16), r"image_size must be an int >= 24"),
    (dict(background="stars"), r"unknown background 'stars'; allowed values: 'plain'"),
    (dict(noise=2.0), r"noise must be in \[0, 1\]"),
    (dict(max_objects=7), r"max_objects must be between 1 and 4"),
])
def test_bad_arguments_raise_value_error(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ShapesWorld(**kwargs)


def test_bad_split_and_index():
    with pytest.raises(ValueError, match=r"unknown split 'dev'; allowed values: 'train', 'val'"):
        WORLD.scene(0, "dev")
    with pytest.raises(ValueError, match=r"index must be in \[0, 2000\) for split 'val'"):
        WORLD.scene(2000, "val")


def test_count_questions_use_real_plurals():
    assert [plural(s) for s in SHAPES] == ["circles", "squares", "triangles", "stars", "crosses"]
    questions = {qa.question for i in range(400) for qa in WORLD.scene(i, "train").qa}
    assert "how many crosses are there?" in questions
    assert not any("crosss" in q for q in questions)
