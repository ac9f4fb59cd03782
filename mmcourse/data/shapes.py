"""ShapesWorld: the synthetic image world every chapter trains on.

A scene is a small RGB image with one to four coloured shapes, and everything a multimodal
data set carries about it: captions with paraphrases, VQA v2-style questions with ten human-like
answers, a scene graph, and pixel boxes. Scenes are generated on demand from ``(seed, split,
index)``, so the same triple always gives the same scene and nothing is stored or downloaded.

Built in §39.1; the book's page "The synthetic world" tours it.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (50, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (240, 210, 40),
    "purple": (150, 70, 200),
    "orange": (245, 135, 30),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
SIZES: dict[str, float] = {"small": 0.18, "large": 0.30}  # side of the bounding box / image side
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
QUESTION_TYPES: tuple[str, ...] = ("colour", "shape", "count", "existence", "relation")
SPLITS: dict[str, int] = {"train": 50_000, "val": 2_000, "test": 2_000, "heldout": 2_000}
#: colour-shape pairs that never occur in train/val/test; every "heldout" scene contains one.
HELDOUT_COMBOS: tuple[tuple[str, str], ...] = (
    ("red", "triangle"), ("green", "star"), ("blue", "circle"), ("yellow", "cross"), ("purple", "square"),
)
BACKGROUNDS: tuple[str, ...] = ("plain", "tinted", "gradient", "texture")
#: background tints; with ``spurious > 0`` the tint of a training scene follows its first object's shape.
TINTS: tuple[tuple[int, int, int], ...] = ((45, 45, 45), (20, 40, 70), (60, 30, 30), (25, 60, 35), (60, 50, 20))
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")

_SPLIT_IDS = {name: k for k, name in enumerate(SPLITS)}
#: how a relation reads in a sentence
RELATION_TEXT = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
_SIZE_WORDS = {"small": ("small", "small", "little", "tiny"), "large": ("large", "large", "big", "big")}


def plural(noun: str) -> str:
    """The plural of a ShapesWorld noun: ``"cross"`` -> ``"crosses"``, ``"star"`` -> ``"stars"``."""
    return noun + ("es" if noun.endswith(("s", "sh", "ch", "x", "z")) else "s")


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene. ``box`` is ``(x0, y0, x1, y1)`` in pixels, end-exclusive."""

    shape: str
    color: str
    size: str
    box: tuple[int, int, int, int]

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    @property
    def phrase(self) -> str:
        """``"large red circle"``: the full description of the object."""
        return f"{self.size} {self.color} {self.shape}"


@dataclass(frozen=True)
class QA:
    """A VQA v2-style item: ``answers`` holds ten annotators' answers, ``answer`` the true one."""

    question: str
    answers: tuple[str, ...]
    answer: str
    answer_type: str  # "yes/no", "number" or "other", as in VQA v2
    question_type: str  # one of QUESTION_TYPES


@dataclass
class Scene:
    """A generated scene: the image and every annotation of it."""

    index: int
    split: str
    image: np.ndarray  # (H, W, 3) uint8
    objects: list[ShapeObject]
    captions: list[str]
    qa: list[QA]
    background: tuple[int, int, int]
    graph: dict = field(repr=False, default_factory=dict)

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) int array of the objects' boxes."""
        return np.array([o.box for o in self.objects], dtype=np.int64).reshape(-1, 4)


def relation(a: ShapeObject, b: ShapeObject, margin: float) -> list[str]:
    """The spatial relations that hold from ``a`` to ``b`` ("left of", "above", ...).

    ``a`` is left of ``b`` when its centre is more than ``margin`` pixels further left; the image's
    y axis points down, so "above" means a smaller y.
    """
    (ax, ay), (bx, by) = a.center, b.center
    out = []
    if ax < bx - margin:
        out.append("left of")
    if ax > bx + margin:
        out.append("right of")
    if ay < by - margin:
        out.append("above")
    if ay > by + margin:
        out.append("below")
    return out


def _check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed values: {', '.join(map(repr, allowed))}")


class ShapesWorld:
    """A deterministic generator of ShapesWorld scenes.

    Args:
        seed: the world's seed; ``(seed, split, index)`` fixes a scene.
        image_size: side of the square images in pixels (at least 24; 64 by default, 32 allowed).
        max_objects: scenes have 1..max_objects objects (at most 4).
        colors, shapes: the vocabulary, a subset of ``COLORS`` / ``SHAPES``.
        heldout_combos: colour-shape pairs kept out of train/val/test; every "heldout" scene has one.
        background: "plain", "tinted", "gradient" or "texture".
        noise: standard deviation of Gaussian pixel noise, as a fraction of 255.
        occlusion: whether objects may overlap (then later objects hide parts of earlier ones).
        spurious: in the train split only, the probability that the background tint is set by the
            first object's shape, a shortcut that does not hold in the other splits (§42.6).
        answer_disagreement: the probability that an annotator gives a wrong answer (at most three
            of the ten answers are wrong, so the majority answer is always the true one).

    Example:
        >>> world = ShapesWorld(seed=0)
        >>> scene = world.scene(0, split="train")
        >>> scene.image.shape, scene.captions[0]
    """

    def __init__(
        self,
        seed: int = 0,
        image_size: int = 64,
        max_objects: int = 4,
        colors: tuple[str, ...] | None = None,
        shapes: tuple[str, ...] | None = None,
        heldout_combos: tuple[tuple[str, str], ...] | None = None,
        background: str = "plain",
        noise: float = 0.0,
        occlusion: bool = False,
        spurious: float = 0.0,
        answer_disagreement: float = 0.1,
    ) -> None:
        self.colors = tuple(colors) if colors is not None else tuple(COLORS)
        self.shapes = tuple(shapes) if shapes is not None else SHAPES
        for c in self.colors:
            _check_choice("colour", c, tuple(COLORS))
        for s in self.shapes:
            _check_choice("shape", s, SHAPES)
        _check_choice("background", background, BACKGROUNDS)
        if not isinstance(image_size, int) or image_size < 24:
            raise ValueError(f"image_size must be an int >= 24 so that objects fit; got {image_size!r}")
        if not 1 <= max_objects <= 4:
            raise ValueError(f"max_objects must be between 1 and 4; got {max_objects!r}")
        for name, value in (("noise", noise), ("spurious", spurious), ("answer_disagreement", answer_disagreement)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]; got {value!r}")
        combos = HELDOUT_COMBOS if heldout_combos is None else tuple(tuple(c) for c in heldout_combos)
        combos = tuple(c for c in combos if c[0] in self.colors and c[1] in self.shapes)
        for c, s in combos:
            _check_choice("colour", c, self.colors)
            _check_choice("shape", s, self.shapes)
        self.seed = seed
        self.image_size = image_size
        self.max_objects = max_objects
        self.heldout_combos = combos
        self.seen_combos = tuple((c, s) for c in self.colors for s in self.shapes if (c, s) not in combos)
        self.background = background
        self.noise = noise
        self.occlusion = occlusion
        self.spurious = spurious
        self.answer_disagreement = answer_disagreement
        self.margin = image_size / 16
        self._side = {k: max(5, round(v * image_size)) for k, v in SIZES.items()}
        self._tag = zlib.crc32(repr((image_size, max_objects, self.colors, self.shapes, combos)).encode())

    # ------------------------------------------------------------------ public API
    def __len__(self) -> int:
        return SPLITS["train"]

    def split_size(self, split: str) -> int:
        _check_choice("split", split, tuple(SPLITS))
        return SPLITS[split]

    def scene(self, index: int, split: str = "train") -> Scene:
        """Generate scene ``index`` of ``split`` ("train", "val", "test" or "heldout")."""
        _check_choice("split", split, tuple(SPLITS))
        if not 0 <= index < SPLITS[split]:
            raise ValueError(f"index must be in [0, {SPLITS[split]}) for split {split!r}; got {index!r}")
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[split], index, self._tag])
        objects = self._place_objects(rng, split)
        background = self._background_colour(rng, split, objects)
        image = self._render(rng, objects, background)
        captions = self._captions(rng, objects)
        qa = self._questions(rng, objects)
        scene = Scene(index, split, image, objects, captions, qa, background)
        scene.graph = self.scene_graph(objects)
        return scene

    def scenes(self, n: int, split: str = "train", start: int = 0) -> list[Scene]:
        """Scenes ``start .. start+n-1`` of ``split``."""
        return [self.scene(i, split) for i in range(start, start + n)]

    def scene_graph(self, objects: list[ShapeObject]) -> dict:
        """The scene graph: objects with attributes, and every relation that holds between pairs."""
        nodes = [{"id": k, "name": o.shape, "attributes": [o.color, o.size], "box": list(o.box)}
                 for k, o in enumerate(objects)]
        edges = [{"subject": i, "predicate": r, "object": j}
                 for i, a in enumerate(objects) for j, b in enumerate(objects) if i != j
                 for r in relation(a, b, self.margin)]
        return {"objects": nodes, "relations": edges}

    # ------------------------------------------------------------------ layout and pixels
    def _place_objects(self, rng: np.random.Generator, split: str) -> list[ShapeObject]:
        S = self.image_size
        n = int(rng.integers(1, self.max_objects + 1))
        combos = list(self.seen_combos)
        objects: list[ShapeObject] = []
        for k in range(n):
            if split == "heldout" and k == 0 and self.heldout_combos:
                color, shape = self.heldout_combos[rng.integers(len(self.heldout_combos))]
            else:
                color, shape = combos[rng.integers(len(combos))]
            size = ("small", "large")[rng.integers(2)]
            side = self._side[size]
            for _ in range(200):
                x0, y0 = (int(v) for v in rng.integers(1, S - side, size=2))
                box = (x0, y0, x0 + side, y0 + side)
                if self.occlusion or all(_gap(box, o.box) >= 2 for o in objects):
                    objects.append(ShapeObject(shape, color, size, box))
                    break
        # the order of objects is random, so "the first object" carries no position information
        return objects

    def _background_colour(self, rng, split, objects) -> tuple[int, int, int]:
        if split == "train" and self.spurious > 0 and rng.random() < self.spurious:
            return TINTS[self.shapes.index(objects[0].shape) % len(TINTS)]
        if self.background == "plain" and self.spurious == 0:
            return TINTS[0]
        return TINTS[rng.integers(len(TINTS))]

    def _render(self, rng, objects, background) -> np.ndarray:
        S = self.image_size
        img = Image.new("RGB", (S, S), background)
        draw = ImageDraw.Draw(img)
        for o in objects:
            _draw_shape(draw, o.shape, o.box, COLORS[o.color])
        arr = np.asarray(img, dtype=np.uint8).copy()
        if self.background in ("gradient", "texture"):
            bg_mask = np.all(arr == np.array(background, dtype=np.uint8), axis=-1)
            if self.background == "gradient":
                ramp = np.linspace(-25, 25, S, dtype=np.float32)
                field_ = ramp[None, :, None] if rng.random() < 0.5 else ramp[:, None, None]
                field_ = np.broadcast_to(field_, (S, S, 1))
            else:
                field_ = rng.normal(0, 12, size=(S // 4 + 1, S // 4 + 1, 1)).astype(np.float32)
                field_ = np.repeat(np.repeat(field_, 4, 0), 4, 1)[:S, :S]
            shaded = np.clip(arr.astype(np.float32) + field_, 0, 255).astype(np.uint8)
            arr = np.where(bg_mask[..., None], shaded, arr)
        if self.noise > 0:
            noisy = arr.astype(np.float32) + rng.normal(0, self.noise * 255, size=arr.shape).astype(np.float32)
            arr = np.clip(noisy, 0, 255).round().astype(np.uint8)
        return arr

    # ------------------------------------------------------------------ language
    def _captions(self, rng, objects: list[ShapeObject]) -> list[str]:
        by_x = sorted(objects, key=lambda o: o.center[0])
        n = len(objects)

        def np_(o: ShapeObject, size_word: bool = True) -> str:
            words = ([_SIZE_WORDS[o.size][rng.integers(4)]] if size_word else []) + [o.color, o.shape]
            return _article(words[0]) + " " + " ".join(words)

        def listing(objs, size_word=True) -> str:
            parts = [np_(o, size_word) for o in objs]
            return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

        caps = [listing(by_x)]
        if n == 1:
            caps.append(f"there is {np_(objects[0])} in the picture")
            caps.append(f"{np_(objects[0])} on a dark background")
        else:
            caps.append(f"there are {NUMBER_WORDS[n]} shapes: {listing(by_x)}")
            caps.append(f"{NUMBER_WORDS[n]} objects, {listing(objects, size_word=False)}")
        # a relational caption about one pair whose relation is clear
        pairs = [(a, b, r) for a in objects for b in objects if a is not b for r in relation(a, b, self.margin)]
        if pairs:
            a, b, r = pairs[rng.integers(len(pairs))]
            rest = [o for o in by_x if o is not a and o is not b]
            cap = f"{np_(a)} {RELATION_TEXT[r]} {np_(b, size_word=False)}"
            caps.append(cap + (f" and {listing(rest)}" if rest else ""))
        else:
            caps.append(f"an image of {listing(by_x)}")
        prefix = ("a picture of ", "an image showing ", "a scene with ")[rng.integers(3)]
        caps.append(prefix + listing(by_x[::-1], size_word=rng.random() < 0.5))
        return caps

    def _questions(self, rng, objects: list[ShapeObject]) -> list[QA]:
        items: list[QA] = []
        refs = [referring_expression(o, objects) for o in objects]
        referable = [k for k, r in enumerate(refs) if r is not None]

        # colour: name the object by shape (and size if needed), ask its colour
        cands = [k for k in range(len(objects)) if referring_expression(objects[k], objects, use_color=False)]
        if cands:
            k = cands[rng.integers(len(cands))]
            ref = referring_expression(objects[k], objects, use_color=False)
            items.append(self._qa(rng, f"what colour is the {ref}?", objects[k].color, "other", "colour"))
        # shape: name the object by colour (and size if needed), ask its shape
        cands = [k for k in range(len(objects)) if referring_expression(objects[k], objects, use_shape=False)]
        if cands:
            k = cands[rng.integers(len(cands))]
            ref = referring_expression(objects[k], objects, use_shape=False)
            items.append(self._qa(rng, f"what shape is the {ref}?", objects[k].shape, "other", "shape"))
        # count: all objects, one shape or one colour (zero allowed)
        kind = rng.integers(3)
        if kind == 0:
            q, c = "how many objects are there?", len(objects)
        elif kind == 1:
            s = self.shapes[rng.integers(len(self.shapes))]
            q, c = f"how many {plural(s)} are there?", sum(o.shape == s for o in objects)
        else:
            col = self.colors[rng.integers(len(self.colors))]
            q, c = f"how many {col} objects are there?", sum(o.color == col for o in objects)
        items.append(self._qa(rng, q, str(c), "number", "count"))
        # existence: balanced between a present and an absent colour-shape pair
        if rng.random() < 0.5:
            o = objects[rng.integers(len(objects))]
            col, s = o.color, o.shape
        else:
            present = {(o.color, o.shape) for o in objects}
            absent = [cs for cs in self.seen_combos if cs not in present]
            col, s = absent[rng.integers(len(absent))]
        exists = any(o.color == col and o.shape == s for o in objects)
        items.append(self._qa(rng, f"is there a {col} {s}?", "yes" if exists else "no", "yes/no", "existence"))
        # relation: a yes/no question about a pair whose relation is clear
        pairs = [(i, j, r) for i in referable for j in referable if i != j
                 for r in relation(objects[i], objects[j], self.margin)]
        if pairs:
            i, j, r = pairs[rng.integers(len(pairs))]
            if rng.random() < 0.5:  # ask the opposite relation, whose answer is "no"
                r = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[r]
            holds = r in relation(objects[i], objects[j], self.margin)
            q = f"is the {refs[i]} {RELATION_TEXT[r]} the {refs[j]}?"
            items.append(self._qa(rng, q, "yes" if holds else "no", "yes/no", "relation"))
        return items

    def _qa(self, rng, question: str, answer: str, answer_type: str, question_type: str) -> QA:
        """Ten annotators' answers: mostly the true answer, sometimes written differently
        ("2" / "two", "Red", "yes."), and a few (at most three) wrong."""
        n_wrong = min(3, int(rng.binomial(10, self.answer_disagreement)))
        wrong_pool = {
            "yes/no": ["no" if answer == "yes" else "yes"],
            "number": [str(c) for c in range(5) if str(c) != answer],
            "other": [w for w in (list(self.colors) if answer in COLORS else list(self.shapes)) if w != answer],
        }[answer_type]
        answers = []
        for k in range(10):
            if k < n_wrong:
                answers.append(wrong_pool[rng.integers(len(wrong_pool))])
            elif rng.random() < 0.2:
                answers.append(_variant(answer, rng))
            else:
                answers.append(answer)
        order = rng.permutation(10)
        return QA(question, tuple(answers[k] for k in order), answer, answer_type, question_type)


# ---------------------------------------------------------------------- helpers
def _gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Pixels between two boxes along the axis where they are furthest apart (negative: overlap)."""
    return max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _variant(answer: str, rng) -> str:
    """A differently written form of the same answer, as real annotators write them."""
    if answer.isdigit():
        return NUMBER_WORDS[int(answer)] if int(answer) < len(NUMBER_WORDS) else answer
    return (answer.capitalize(), answer + ".", answer + " ")[rng.integers(3)]


def referring_expression(o: ShapeObject, objects: list[ShapeObject], use_color: bool = True,
                         use_shape: bool = True) -> str | None:
    """The shortest phrase that picks out ``o`` among ``objects`` (None if none does).

    Tries the shape, then colour + shape, then size + colour + shape (leaving out the attribute a
    question asks about); an object named only by colour is "the red object".
    """
    attrs = []
    if use_shape:
        attrs.append(("shape",))
    if use_color and use_shape:
        attrs.append(("color", "shape"))
    if not use_shape:
        attrs.append(("color",))
    if not use_color:
        attrs.append(("size", "shape"))
    else:
        attrs.append(("size", "color") + (("shape",) if use_shape else ()))
    for keys in attrs:
        same = [p for p in objects if all(getattr(p, k) == getattr(o, k) for k in keys)]
        if len(same) == 1:
            words = [getattr(o, k) for k in keys]
            return " ".join(words) + ("" if "shape" in keys else " object")
    return None


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], rgb) -> None:
    """Draw one filled shape inside ``box`` (end-exclusive): every pixel it sets lies in the box."""
    x0, y0, x1, y1 = box
    x1, y1 = x1 - 1, y1 - 1  # PIL takes inclusive corners
    w, h = x1 - x0, y1 - y0
    cx, cy = x0 + w / 2, y0 + h / 2
    if shape == "circle":
        draw.ellipse([x0, y0, x1, y1], fill=rgb)
    elif shape == "square":
        draw.rectangle([x0 + 0.08 * w, y0 + 0.08 * h, x1 - 0.08 * w, y1 - 0.08 * h], fill=rgb)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=rgb)
    elif shape == "star":
        pts = []
        for k in range(10):
            r = (0.5 if k % 2 == 0 else 0.22) * w
            a = -np.pi / 2 + k * np.pi / 5
            pts.append((cx + r * np.cos(a), cy + 0.5 * h / (0.5 * w) * r * np.sin(a) + 0.06 * h))
        draw.polygon([(min(max(x, x0), x1), min(max(y, y0), y1)) for x, y in pts], fill=rgb)
    elif shape == "cross":
        t = 0.17
        draw.rectangle([x0, cy - t * h, x1, cy + t * h], fill=rgb)
        draw.rectangle([cx - t * w, y0, cx + t * w, y1], fill=rgb)
    else:  # pragma: no cover - guarded by the constructor
        raise ValueError(f"unknown shape {shape!r}; allowed values: {SHAPES}")


def to_tensor(images) -> "torch.Tensor":
    """Stack uint8 images (N, H, W, 3) or scenes into a float tensor (N, 3, H, W) in [0, 1]."""
    import torch

    if isinstance(images, Scene):
        images = [images]
    if isinstance(images, (list, tuple)):
        images = np.stack([s.image if isinstance(s, Scene) else np.asarray(s) for s in images])
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected images of shape (N, H, W, 3), got {arr.shape}")
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)  # (N, H, W, 3) -> (N, 3, H, W)
