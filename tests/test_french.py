"""ShapesWorld in French: agreement, elision, contraction, plurals, and pairs that say the same."""
import numpy as np
import pytest

from mmcourse.data import speech
from mmcourse.data.french import (COLOURS, NOUNS, bilingual_captions, count_phrase, listing,
                                  noun_phrase, of, plural)
from mmcourse.data.shapes import COLORS, SHAPES, ShapeObject, ShapesWorld

BOX = (0, 0, 8, 8)


def test_every_shape_and_colour_has_french_words():
    assert set(NOUNS) == set(SHAPES) and set(COLOURS) == set(COLORS)


@pytest.mark.parametrize("shape, colour, size, definite, expected", [
    ("circle", "green", "small", False, "un petit cercle vert"),
    ("star", "green", "small", False, "une petite étoile verte"),
    ("star", "purple", "large", True, "la grande étoile violette"),
    ("cross", "orange", "large", False, "une grande croix orange"),
    ("square", "blue", "small", True, "le petit carré bleu"),
])
def test_noun_phrases_agree_with_the_noun(shape, colour, size, definite, expected):
    assert noun_phrase(ShapeObject(shape, colour, size, BOX), definite) == expected


def test_elision_and_the_contraction_of_de():
    star = ShapeObject("star", "yellow", "large", BOX)
    square = ShapeObject("square", "red", "small", BOX)
    cross = ShapeObject("cross", "blue", "small", BOX)
    assert noun_phrase(star, True, size=False) == "l'étoile jaune"
    assert of(noun_phrase(star, True, size=False)) == "de l'étoile jaune"
    assert of(noun_phrase(square, True)) == "du petit carré rouge"
    assert of(noun_phrase(cross, True)) == "de la petite croix bleue"


def test_plurals_and_counts():
    assert [plural(w) for w in ("cercle", "croix", "orange", "verte")] == [
        "cercles", "croix", "orange", "vertes"]
    assert count_phrase(1, "star") == "une étoile" and count_phrase(1, "circle") == "un cercle"
    assert count_phrase(2, "cross") == "deux croix" and count_phrase(3, "square") == "trois carrés"
    assert listing(["a", "b", "c"]) == "a, b et c" and listing(["a", "b"], "and") == "a and b"
    with pytest.raises(ValueError, match="1 <= n"):
        count_phrase(0, "star")
    with pytest.raises(ValueError, match="at least one"):
        listing([])


def test_bilingual_captions_say_the_same_in_both_languages():
    world = ShapesWorld(seed=0)
    for i in range(200):
        objects = world.scene(i).objects
        pairs = bilingual_captions(objects, world.margin)
        assert 2 <= len(pairs) <= 3
        en, fr = pairs[0]
        assert en.count(" and ") == fr.count(" et ") == (len(objects) > 1)
        assert len(en.split(", ")) == len(fr.split(", "))
        for o in objects:  # every object is named in both, with its colour
            assert o.shape in en and NOUNS[o.shape][0] in fr
        if len(pairs) == 3:
            assert " is " in pairs[2][0] and " est " in pairs[2][1]
            assert " de du " not in pairs[2][1] and " de le " not in pairs[2][1]
    with pytest.raises(ValueError, match="at least one object"):
        bilingual_captions([])


def test_a_french_voice_reads_french_with_its_accents():
    sentence = bilingual_captions([ShapeObject("star", "green", "large", BOX)])[0][1]
    wave, sr = speech.synthesize(sentence, "fr")
    assert sr == 16_000 and len(wave) > 0.8 * sr and np.abs(wave).max() > 0.05


def test_accents_reach_the_synthesiser():
    # "carré" ends in /e/; without its accent eSpeak reads "carre" as /kaʁ/
    assert speech.phonemes("carré", "fr") != speech.phonemes("carre", "fr")
