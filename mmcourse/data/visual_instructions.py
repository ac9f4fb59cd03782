"""LLaVA's three kinds of visual instruction data, generated from a scene's annotations.

LLaVA (Liu et al. 2023) never showed its generator an image: GPT-4 read a *symbolic* version of
each COCO image — its captions and its object boxes — and wrote three kinds of data from it:
conversations (questions and answers about the content), detailed descriptions, and complex
reasoning (questions whose answer needs a step of inference, answered with the reasoning).
ShapesWorld's annotations are exact, so templates can do GPT-4's job: :func:`symbolic_context`
writes the text LLaVA's generator read, :func:`llava_examples` the three kinds. The conversations
are those §40.5 trains on (:func:`mmcourse.data.instructions.conversation`). Built in §40.7.
"""
from __future__ import annotations

import numpy as np

from .instructions import conversation
from .shapes import NUMBER_WORDS, RELATION_TEXT, Scene, ShapeObject, referring_expression

#: the kinds of instruction data, in LLaVA's words
LLAVA_KINDS: tuple[str, ...] = ("conversation", "detailed description", "complex reasoning")
DETAIL_PROMPTS: tuple[str, ...] = (
    "describe the following image in detail.",
    "give an elaborate explanation of the image you see.",
    "what do you see in this picture? describe every object.",
)


def symbolic_context(scene: Scene) -> str:
    """What LLaVA's text-only generator read about an image: its captions, then one line per
    object with its box as (x0, y0, x1, y1), normalised to [0, 1] and rounded to 2 decimals."""
    size = scene.image.shape[0]
    boxes = [f"{o.color} {o.shape}: [{', '.join(f'{v / size:.2f}' for v in o.box)}]"
             for o in scene.objects]
    return "\n".join(scene.captions + boxes)


def _where(o: ShapeObject, size: int) -> str:
    """``"top left"``, ``"middle"``, ... from the object's centre."""
    x, y = o.center
    row = ("top", "middle", "bottom")[min(2, int(3 * y / size))]
    col = ("left", "middle", "right")[min(2, int(3 * x / size))]
    return "middle" if row == col == "middle" else f"{row} {col}".replace("middle ", "")


def detailed_description(scene: Scene) -> str:
    """A several-sentence description: how many objects, each with its size, colour and place,
    and one relation between the first two objects from the left."""
    size = scene.image.shape[0]
    objects = sorted(scene.objects, key=lambda o: o.center[0])
    n = len(objects)
    lines = [f"the image shows {NUMBER_WORDS[n]} shape{'s' if n > 1 else ''} on a dark background."]
    for o in objects:
        lines.append(f"at the {_where(o, size)} there is a {o.size} {o.color} {o.shape}.")
    graph = scene.graph["relations"]
    if graph:
        r = graph[0]
        a, b = scene.objects[r["subject"]], scene.objects[r["object"]]
        lines.append(f"the {a.color} {a.shape} is {RELATION_TEXT[r['predicate']]} the "
                     f"{b.color} {b.shape}.")
    return " ".join(lines)


def complex_reasoning(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    """A question that needs a step of inference, answered with the reasoning: what remains if
    all objects of one colour are removed, or whether a smaller object could hide a larger one."""
    objects = scene.objects
    sizes = {o.size for o in objects}
    if len(sizes) == 2 and rng.random() < 0.5:
        small = next(o for o in objects if o.size == "small")
        large = next(o for o in objects if o.size == "large")
        a, b = (referring_expression(o, objects) or f"{o.color} {o.shape}" for o in (small, large))
        question = f"could the {a} be hidden completely behind the {b}?"
        answer = (f"yes. the {a} is small and the {b} is large, so the {b} is big enough to "
                  f"cover it if it were moved in front of it.")
        return question, answer
    color = objects[rng.integers(len(objects))].color
    removed = sum(o.color == color for o in objects)
    left = len(objects) - removed
    question = f"if every {color} object were taken away, how many objects would be left?"
    total = ("there is one object" if len(objects) == 1
             else f"there are {NUMBER_WORDS[len(objects)]} objects")
    answer = (f"{NUMBER_WORDS[left]}. {total} and "
              f"{NUMBER_WORDS[removed]} of them {'is' if removed == 1 else 'are'} {color}, "
              f"so {NUMBER_WORDS[len(objects)]} minus {NUMBER_WORDS[removed]} leaves "
              f"{NUMBER_WORDS[left]}.")
    return question, answer


def llava_examples(scene: Scene, rng: np.random.Generator) -> dict[str, list[tuple[str, str]]]:
    """One example of each of LLaVA's three kinds for ``scene``, as (user, assistant) turns:
    a conversation of up to three questions, a detailed description, a complex-reasoning
    question."""
    return {
        "conversation": conversation(scene, rng, max_questions=3, p_describe=0.0),
        "detailed description": [(DETAIL_PROMPTS[rng.integers(len(DETAIL_PROMPTS))],
                                  detailed_description(scene))],
        "complex reasoning": [complex_reasoning(scene, rng)],
    }
