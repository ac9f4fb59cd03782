"""Web-like image-text pairs: ShapesWorld captions corrupted the way alt-text is corrupted.

Pairs scraped from the web (LAION, CC3M/12M) are noisy in a few recurring ways, which this module
reproduces at known rates so that a filter can be scored against the truth:

- ``"swapped"``: the text belongs to another image (a gallery's captions shifted by one);
- ``"wrong attribute"``: the text describes the image but gets a colour or a shape wrong;
- ``"boilerplate"``: the text says nothing about the image ("image", "click to enlarge");
- ``"truncated"``: the text was cut after its first words ("a large");
- near-duplicate images: the same picture re-encoded, shifted by a pixel or two, with another
  text (:func:`jitter`).

:func:`web_corpus` builds such a corpus from scenes. Built in §40.7.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import COLORS, SHAPES, Scene

#: the kinds of text a pair of :func:`web_corpus` can carry
KINDS: tuple[str, ...] = ("clean", "swapped", "wrong attribute", "boilerplate", "truncated")
#: texts that say nothing about the image, as alt-text often does (some words are out of the
#: captions' vocabulary and become ``<unk>`` for a ShapesWorld tokenizer)
BOILERPLATE: tuple[str, ...] = ("image", "a picture", "an image", "picture of the scene",
                                "click to enlarge", "photo", "untitled image", "img")


def wrong_attribute(caption: str, rng: np.random.Generator) -> str:
    """``caption`` with one colour or shape word replaced by another colour or shape:
    ``"a red circle"`` -> ``"a red star"``. Raises ValueError if it names no colour or shape."""
    words = caption.split(" ")
    spots = [k for k, w in enumerate(words) if w.strip(",:") in COLORS or w.strip(",:") in SHAPES]
    if not spots:
        raise ValueError(f"expected a caption naming a colour or a shape, got {caption!r}")
    k = spots[rng.integers(len(spots))]
    word = words[k].strip(",:")
    pool = tuple(COLORS) if word in COLORS else SHAPES
    new = [w for w in pool if w != word][rng.integers(len(pool) - 1)]
    words[k] = words[k].replace(word, new)
    return " ".join(words)


def truncate(caption: str, rng: np.random.Generator, max_words: int = 2) -> str:
    """The first 1 to ``max_words`` words of ``caption`` (always fewer than it has, if it has
    more than one)."""
    words = caption.split(" ")
    keep = int(rng.integers(1, max(1, min(max_words, len(words) - 1)) + 1))
    return " ".join(words[:keep]).rstrip(",:")


def jitter(image: np.ndarray, rng: np.random.Generator, max_shift: int = 2,
           noise: float = 0.02) -> np.ndarray:
    """A near-duplicate of ``image`` (H, W, 3) uint8: shifted by 1 to ``max_shift`` pixels along
    each axis (the border filled with the nearest row or column), plus Gaussian pixel noise of
    standard deviation ``noise`` (a fraction of 255), as a re-encoded copy found elsewhere."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an image of shape (H, W, 3), got {image.shape}")
    dy, dx = (int(s) * int(rng.choice([-1, 1])) for s in rng.integers(1, max_shift + 1, size=2))
    height, width = image.shape[:2]
    rows = np.clip(np.arange(height) - dy, 0, height - 1)
    cols = np.clip(np.arange(width) - dx, 0, width - 1)
    shifted = image[rows][:, cols].astype(np.float32)  # (H, W, 3), edges repeated
    shifted += rng.normal(0.0, noise * 255, size=shifted.shape).astype(np.float32)
    return np.clip(shifted, 0, 255).round().astype(np.uint8)


@dataclass
class WebCorpus:
    """Image-text pairs with the truth about each. ``images`` (N, H, W, 3) uint8; ``captions``
    the N texts; ``kinds`` one of :data:`KINDS` per pair; ``scene`` the index (into the scenes
    given to :func:`web_corpus`) of the scene each image shows; ``duplicate_of`` the pair a
    near-duplicate image copies, or -1. Built in §40.7."""

    images: np.ndarray
    captions: list[str]
    kinds: list[str]
    scene: np.ndarray
    duplicate_of: np.ndarray

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def clean(self) -> np.ndarray:
        """(N,) bool: whether each pair's text is a true caption of its image."""
        return np.array([k == "clean" for k in self.kinds])


def web_corpus(scenes: list[Scene], rates: dict[str, float], duplicates: float = 0.0,
               seed: int = 0) -> WebCorpus:
    """A web-like corpus: one pair per scene, with one of the scene's captions corrupted at the
    given ``rates`` (e.g. ``{"swapped": 0.2, "wrong attribute": 0.15}``; the rest are clean),
    then ``duplicates`` x len(scenes) extra pairs: a :func:`jitter` ed copy of a random earlier
    image with another of its scene's (clean) captions, appended at the end. The kinds are
    assigned to exactly ``round(rate * len(scenes))`` scenes each, at random."""
    unknown = set(rates) - set(KINDS[1:])
    if unknown:
        raise ValueError(f"unknown corruption kinds {sorted(unknown)}; expected some of {KINDS[1:]}")
    if sum(rates.values()) > 1 or min(rates.values(), default=0) < 0 or not 0 <= duplicates <= 1:
        raise ValueError(f"expected rates >= 0 summing to at most 1 and duplicates in [0, 1], got "
                         f"{rates} and {duplicates}")
    if len(scenes) < 2:
        raise ValueError(f"expected at least two scenes (swapping needs another), got {len(scenes)}")
    rng = np.random.default_rng(seed)
    n = len(scenes)
    kinds = np.array(["clean"] * n, dtype=object)
    order, start = rng.permutation(n), 0
    for kind in KINDS[1:]:
        count = round(rates.get(kind, 0.0) * n)
        kinds[order[start:start + count]] = kind
        start += count
    captions = []
    for k, scene in enumerate(scenes):
        caption = scene.captions[rng.integers(len(scene.captions))]
        if kinds[k] == "swapped":
            other = scenes[(k + 1 + rng.integers(n - 1)) % n]  # any scene but this one
            caption = other.captions[rng.integers(len(other.captions))]
        elif kinds[k] == "wrong attribute":
            caption = wrong_attribute(caption, rng)
        elif kinds[k] == "boilerplate":
            caption = BOILERPLATE[rng.integers(len(BOILERPLATE))]
        elif kinds[k] == "truncated":
            caption = truncate(caption, rng)
        captions.append(caption)
    images = [s.image for s in scenes]
    source, copies = np.arange(n), np.full(n, -1)
    extra = rng.choice(n, size=round(duplicates * n), replace=False)
    for k in extra:
        images.append(jitter(scenes[k].image, rng))
        captions.append(scenes[k].captions[rng.integers(len(scenes[k].captions))])
    return WebCorpus(images=np.stack(images), captions=captions,
                     kinds=list(kinds) + ["clean"] * len(extra),
                     scene=np.concatenate([source, extra]),
                     duplicate_of=np.concatenate([copies, extra]))
