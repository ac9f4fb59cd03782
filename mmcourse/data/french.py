"""ShapesWorld in French: the same scenes described by a French grammar, beside English.

Speech recognition in two languages and speech translation (§41.1, §41.3) need French sentences
that say what English ones say. They are made here from the scene itself, not translated: a
small grammar with French agreement — the gender of the noun (``un cercle``, ``une étoile``)
carried by the article, the size adjective before the noun and the colour after it (``une petite
étoile verte``), elision (``l'étoile``), the contraction of ``de`` with the article (``à gauche
du carré``, ``de la croix``, ``de l'étoile``) and plurals (``deux croix``, ``trois cercles``).
:func:`bilingual_captions` gives each description in both languages, from one choice of words, so
that a pair is a translation by construction. Built in §41.1.
"""
from __future__ import annotations

from collections.abc import Sequence

from mmcourse.data.shapes import NUMBER_WORDS, RELATION_TEXT, ShapeObject, relation

#: noun and gender of each shape
NOUNS: dict[str, tuple[str, str]] = {
    "circle": ("cercle", "m"), "square": ("carré", "m"), "triangle": ("triangle", "m"),
    "star": ("étoile", "f"), "cross": ("croix", "f"),
}
#: colour adjectives: masculine, feminine (plurals add -s unless the word ends in -s or -x, or
#: is "orange", invariable as a colour named after a fruit)
COLOURS: dict[str, tuple[str, str]] = {
    "red": ("rouge", "rouge"), "green": ("vert", "verte"), "blue": ("bleu", "bleue"),
    "yellow": ("jaune", "jaune"), "purple": ("violet", "violette"), "orange": ("orange", "orange"),
}
SIZES: dict[str, tuple[str, str]] = {"small": ("petit", "petite"), "large": ("grand", "grande")}
#: each relation, to be followed by ``de`` and the other object (:func:`of`)
RELATIONS: dict[str, str] = {"left of": "à gauche", "right of": "à droite", "above": "au-dessus",
                             "below": "en dessous"}
NUMBERS: tuple[str, ...] = ("zéro", "un", "deux", "trois", "quatre", "cinq")
_VOWELS = "aeiouyéèêàâîôû"


def plural(word: str) -> str:
    """A French noun or adjective in the plural: ``cercle`` -> ``cercles``; ``croix``, ``orange``
    unchanged."""
    return word if word.endswith(("s", "x", "z")) or word == "orange" else word + "s"


def _gender(shape: str) -> str:
    if shape not in NOUNS:
        raise ValueError(f"unknown shape {shape!r}; allowed values: {', '.join(NOUNS)}")
    return NOUNS[shape][1]


def noun_phrase(obj: ShapeObject, definite: bool = False, size: bool = True) -> str:
    """``obj`` in French: ``un petit cercle rouge``, ``la grande étoile verte``, ``l'étoile
    verte`` (definite, without its size)."""
    noun, gender = NOUNS[obj.shape][0], _gender(obj.shape)
    k = 0 if gender == "m" else 1
    words = ([SIZES[obj.size][k]] if size else []) + [noun, COLOURS[obj.color][k]]
    if not definite:
        return ("un " if gender == "m" else "une ") + " ".join(words)
    if words[0][0] in _VOWELS:
        return "l'" + " ".join(words)
    return ("le " if gender == "m" else "la ") + " ".join(words)


def of(phrase: str) -> str:
    """``de`` before a definite noun phrase, contracted as French requires: ``de`` + ``le carré``
    -> ``du carré``; ``de la croix`` and ``de l'étoile`` stay."""
    if phrase.startswith("le "):
        return "du " + phrase[3:]
    return "de " + phrase


def listing(phrases: Sequence[str], conjunction: str = "et") -> str:
    """``a``, ``a et b``, ``a, b et c`` (or ``and`` for English)."""
    if not phrases:
        raise ValueError("expected at least one phrase")
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + f" {conjunction} " + phrases[-1]


def count_phrase(n: int, shape: str) -> str:
    """``une croix``, ``deux croix``, ``trois cercles``."""
    if not 1 <= n < len(NUMBERS):
        raise ValueError(f"expected 1 <= n <= {len(NUMBERS) - 1}, got {n}")
    noun, gender = NOUNS[shape][0], _gender(shape)
    if n == 1:
        return ("un " if gender == "m" else "une ") + noun
    return f"{NUMBERS[n]} {plural(noun)}"


def bilingual_captions(objects: Sequence[ShapeObject], margin: float = 4.0
                       ) -> list[tuple[str, str]]:
    """Descriptions of a scene's ``objects`` as (English, French) pairs, each pair saying the
    same thing: the objects from left to right; how many there are; and, when two objects are
    clearly apart (``margin`` pixels, as :func:`mmcourse.data.shapes.relation`), where the first
    is relative to the second. English uses ShapesWorld's canonical words (``small``, ``large``)."""
    if not objects:
        raise ValueError("expected at least one object")
    by_x = sorted(objects, key=lambda o: o.center[0])

    def english(o: ShapeObject, definite: bool = False) -> str:
        words = [o.size, o.color, o.shape]
        article = "the" if definite else ("an" if words[0][0] in "aeiou" else "a")
        return f"{article} {' '.join(words)}"

    pairs = [(listing([english(o) for o in by_x], "and"),
              listing([noun_phrase(o) for o in by_x]))]
    n = len(objects)
    if n == 1:
        pairs.append((f"there is {english(objects[0])} in the picture",
                      f"il y a {noun_phrase(objects[0])} sur l'image"))
    else:
        pairs.append((f"there are {NUMBER_WORDS[n]} shapes",
                      f"il y a {NUMBERS[n]} formes"))
    for a in by_x:
        for b in by_x:
            if a is b:
                continue
            for r in relation(a, b, margin)[:1]:
                pairs.append((f"{english(a, True)} is {RELATION_TEXT[r]} {english(b, True)}",
                              f"{noun_phrase(a, True)} est {RELATIONS[r]} "
                              f"{of(noun_phrase(b, True))}"))
                return pairs  # one relation per scene, the first clear one from the left
    return pairs
