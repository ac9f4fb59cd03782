"""Code: plotting programs that draw ShapesWorld scenes, and a corpus of small Python functions.

``scene_to_code`` writes the matplotlib program that draws a scene (one patch per object, in the
scene's colours), and ``render_code`` runs such a program in a restricted namespace and returns
its pixels, so that a model's plotting code can be checked by re-rendering it (plot -> code, §41.6).

``program_corpus`` generates small, runnable Python functions (arithmetic, list processing,
string formatting, loops, conditionals) from templates with varied names and constants: the
material for looking at code as a sequence of tokens and as a syntax tree.

Built in §39.2; used in §41.6 (code in a multimodal context).
"""
from __future__ import annotations

import ast
import builtins

import numpy as np

from mmcourse.data.shapes import COLORS, SHAPES, Scene

ALLOWED_MODULES: tuple[str, ...] = ("numpy", "matplotlib")
#: builtins a plotting program may call
_SAFE_BUILTINS = {name: getattr(builtins, name) for name in (
    "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter", "float", "int", "isinstance", "len",
    "list", "map", "max", "min", "pow", "print", "range", "reversed", "round", "set", "sorted", "str", "sum",
    "tuple", "zip", "ValueError",
)}
#: builtins that would reach files, the interpreter or objects' internals
_FORBIDDEN_NAMES = frozenset({
    "open", "exec", "eval", "compile", "globals", "locals", "vars", "getattr", "setattr", "delattr", "input",
    "breakpoint", "help", "exit", "quit", "memoryview", "type", "object", "super",
})
#: attributes that would reach files, other processes or the backend
_FORBIDDEN_ATTRS = frozenset({
    "savefig", "imsave", "imread", "save", "savez", "savez_compressed", "savetxt", "load", "loadtxt",
    "genfromtxt", "fromfile", "tofile", "memmap", "use", "switch_backend", "rcParams", "rc", "system", "popen",
})


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{v:02x}" for v in rgb)


def _patch_lines(shape: str, color: str, box: tuple[int, int, int, int]) -> list[str]:
    """The code that adds one object as matplotlib patches, in data coordinates where pixel ``i``
    spans [i, i+1). It follows ShapesWorld's ``_draw_shape`` (the same fractions of the box) and
    lands on the same pixels: Pillow drops the fractions of a rectangle's corners and fills pixels
    ``a .. b`` inclusive, the span [a, b + 1); polygons take the outer corners of the pixels Pillow
    fills (the star half a pixel wider than its vertices)."""
    x0, y0, x1, y1 = box
    w, h = x1 - 1 - x0, y1 - 1 - y0  # Pillow's inclusive corners
    cx, cy = x0 + w / 2, y0 + h / 2
    c = f'colors["{color}"]'  # facecolor only: a patch's edge line would widen it

    def rect(a: float, b: float, c_: float, d: float) -> str:  # Pillow's rectangle [a, b, c_, d]
        a, b, c_, d = int(a), int(b), int(c_), int(d)
        return f"ax.add_patch(Rectangle(({a}, {b}), {c_ - a + 1}, {d - b + 1}, facecolor={c}))"

    if shape == "circle":
        return [f"ax.add_patch(Circle(({(x0 + x1) / 2:g}, {(y0 + y1) / 2:g}), {(x1 - x0) / 2:g}, facecolor={c}))"]
    if shape == "square":
        return [rect(x0 + 0.08 * w, y0 + 0.08 * h, x0 + 0.92 * w, y0 + 0.92 * h)]
    if shape == "cross":
        return [rect(x0, cy - 0.17 * h, x0 + w, cy + 0.17 * h), rect(cx - 0.17 * w, y0, cx + 0.17 * w, y0 + h)]
    if shape == "triangle":  # the outer corners of the pixels Pillow fills
        return [f"ax.add_patch(Polygon([({cx + 0.5:g}, {y0}), ({x1}, {y1}), ({x0}, {y1})], facecolor={c}))"]
    if shape == "star":  # ten points, alternately on an outer and an inner circle
        return [
            "angles = np.pi * (np.arange(10) / 5 - 0.5)",
            f"radii = np.where(np.arange(10) % 2 == 0, {0.5 * w + 0.5:.1f}, {0.22 * w + 0.5:.1f})",
            f"points = np.c_[{cx:g} + radii * np.cos(angles), {cy + 0.06 * h:.1f} + radii * np.sin(angles)]",
            f"ax.add_patch(Polygon(points, facecolor={c}))",
        ]
    raise ValueError(f"unknown shape {shape!r}; allowed values: {', '.join(SHAPES)}")


def scene_to_code(scene: Scene) -> str:
    """A short, runnable matplotlib program that draws ``scene``: one patch per object at its box,
    in the scene's colours, on its background. ``render_code`` runs it."""
    if not isinstance(scene, Scene):
        raise ValueError(f"expected a ShapesWorld Scene, got {type(scene).__name__}")
    size = scene.image.shape[0]
    used = dict.fromkeys(o.color for o in scene.objects)
    palette = ", ".join(f'"{c}": "{_hex(COLORS[c])}"' for c in used)
    lines = [
        "import matplotlib.pyplot as plt",
        "import numpy as np",
        "from matplotlib.patches import Circle, Polygon, Rectangle",
        "",
        f"colors = {{{palette}}}",
        f"fig, ax = plt.subplots(figsize=(1, 1), dpi={size})",
        "fig.subplots_adjust(left=0, right=1, bottom=0, top=1)",
        f'fig.set_facecolor("{_hex(scene.background)}")',
        f"ax.set_xlim(0, {size})",
        f"ax.set_ylim({size}, 0)  # y grows downwards, as in the image",
        'ax.axis("off")',
    ]
    for o in scene.objects:
        lines += ["", f"# {o.phrase}", *_patch_lines(o.shape, o.color, o.box)]
    return "\n".join(lines) + "\n"


class _DropShow(ast.NodeTransformer):
    """Remove ``plt.show()`` statements: rendering reads the figure, it does not display it."""

    def visit_Expr(self, node: ast.Expr):
        call = node.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "show":
            return None
        return node


def _check_code(code: str) -> ast.Module:
    """Parse ``code`` and refuse what a plotting program does not need: imports other than numpy
    and matplotlib, dunder names and attributes, and the builtins or attributes that reach files
    or the interpreter. Raises ValueError naming the offending name."""
    if not isinstance(code, str):
        raise ValueError(f"code must be a str; got {type(code).__name__}")
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        raise ValueError(f"code does not parse: {err}") from err
    allowed = ", ".join(ALLOWED_MODULES)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            relative = isinstance(node, ast.ImportFrom) and node.level > 0
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or "."]
            for name in names:
                if relative or name.split(".")[0] not in ALLOWED_MODULES:
                    raise ValueError(f"import of {name!r} is not allowed; allowed modules: {allowed}")
        elif isinstance(node, ast.Name) and (node.id.startswith("__") or node.id in _FORBIDDEN_NAMES):
            raise ValueError(f"name {node.id!r} is not allowed in plotting code; allowed modules: {allowed}")
        elif isinstance(node, ast.Attribute) and (node.attr.startswith("_") or node.attr in _FORBIDDEN_ATTRS):
            raise ValueError(f"attribute {node.attr!r} is not allowed in plotting code")
    return ast.fix_missing_locations(_DropShow().visit(tree))


def _safe_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level or name.split(".")[0] not in ALLOWED_MODULES:
        raise ValueError(f"import of {name!r} is not allowed; allowed modules: {', '.join(ALLOWED_MODULES)}")
    return builtins.__import__(name, globals, locals, fromlist, level)


def render_code(code: str, image_size: int = 64) -> np.ndarray:
    """Run a matplotlib program and return the figure it draws as (image_size, image_size, 3) uint8.

    The program runs with numpy and matplotlib importable and a short list of builtins; anything
    else (other imports, file access, dunder attributes) raises ValueError naming it. This keeps
    honest mistakes out, it is not a sandbox: run only code you would run anyway. The last figure
    the program creates is rendered at 1 x 1 inch and ``image_size`` dpi, then closed.
    """
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8; got {image_size!r}")
    tree = _check_code(code)
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    before = set(plt.get_fignums())
    namespace = {"__builtins__": {**_SAFE_BUILTINS, "__import__": _safe_import}, "__name__": "__plot__"}
    try:
        exec(compile(tree, "<plot code>", "exec"), namespace)
        new = [n for n in plt.get_fignums() if n not in before]
        if not new:
            raise ValueError("the code drew no figure (expected plt.figure() or plt.subplots())")
        fig = plt.figure(new[-1])
        fig.set_size_inches(1, 1)
        fig.set_dpi(image_size)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 4) -> (H, W, 3)
    finally:
        for n in set(plt.get_fignums()) - before:
            plt.close(n)


# ---------------------------------------------------------------------- a corpus of small programs
_VERBS = ("compute", "get", "make", "find", "calc", "build")
_NOUNS = ("total", "score", "value", "amount", "result", "size", "count", "cost")
_VARS = ("x", "y", "n", "m", "a", "b", "k", "value", "item", "num")
_LISTS = ("values", "items", "numbers", "data", "xs", "scores")
_WORDS = ("red", "circle", "blue", "square", "green", "star", "apple", "table", "video", "sound", "cross")


def _pick(rng, options):
    return options[rng.integers(len(options))]


def _name(rng) -> str:
    return f"{_pick(rng, _VERBS)}_{_pick(rng, _NOUNS)}"


def _ints(rng, n: int, lo: int = -9, hi: int = 20) -> str:
    return "[" + ", ".join(str(int(v)) for v in rng.integers(lo, hi, size=n)) + "]"


def _arithmetic(rng) -> str:
    f, a, b = _name(rng), *rng.choice(_VARS, size=2, replace=False)
    op1, op2 = _pick(rng, ("+", "-", "*")), _pick(rng, ("+", "-", "*", "//", "%"))
    k = int(rng.integers(2, 10))
    return (f"def {f}({a}, {b}):\n    return ({a} {op1} {b}) {op2} {k}\n\n"
            f"result = {f}({int(rng.integers(1, 30))}, {int(rng.integers(1, 30))})\n")


def _filtered_sum(rng) -> str:
    f, xs, v = _name(rng), _pick(rng, _LISTS), _pick(rng, _VARS)
    cond = _pick(rng, (f"{v} % {int(rng.integers(2, 5))} == 0", f"{v} > {int(rng.integers(0, 10))}",
                       f"{v} < 0"))
    acc = _pick(rng, ("total", "acc", "s"))
    return (f"def {f}({xs}):\n    {acc} = 0\n    for {v} in {xs}:\n        if {cond}:\n"
            f"            {acc} += {v}\n    return {acc}\n\nresult = {f}({_ints(rng, int(rng.integers(3, 8)))})\n")


def _comprehension(rng) -> str:
    f, xs, v = _name(rng), _pick(rng, _LISTS), _pick(rng, _VARS)
    expr = _pick(rng, (f"{v} * {int(rng.integers(2, 6))}", f"{v} ** 2", f"{v} + {int(rng.integers(1, 9))}",
                       f"abs({v})"))
    cond = _pick(rng, ("", f" if {v} != 0", f" if {v} % 2 == 1"))
    return (f"def {f}({xs}):\n    return [{expr} for {v} in {xs}{cond}]\n\n"
            f"result = {f}({_ints(rng, int(rng.integers(3, 7)))})\n")


def _largest(rng) -> str:
    f, xs, v = _name(rng), _pick(rng, _LISTS), _pick(rng, _VARS)
    best, cmp = _pick(rng, (("best", ">"), ("smallest", "<"), ("top", ">")))
    return (f"def {f}({xs}):\n    {best} = {xs}[0]\n    for {v} in {xs}[1:]:\n        if {v} {cmp} {best}:\n"
            f"            {best} = {v}\n    return {best}\n\nresult = {f}({_ints(rng, int(rng.integers(2, 8)))})\n")


def _formatting(rng) -> str:
    f = _pick(rng, ("describe", "label", "caption", "announce"))
    color, shape = _pick(rng, tuple(COLORS)), _pick(rng, SHAPES)
    template = _pick(rng, ('f"{count} {color} {shape}s"', 'f"there are {count} {color} {shape}s"',
                           '"{} {} {}s".format(count, color, shape)', 'f"{shape}: {count} ({color})"'))
    return (f"def {f}(count, color, shape):\n    return {template}\n\n"
            f'result = {f}({int(rng.integers(2, 9))}, "{color}", "{shape}")\n')


def _while_loop(rng) -> str:
    f, v = _name(rng), _pick(rng, ("n", "m", "num", "x"))
    body = _pick(rng, (
        (f"    steps = 0\n    while {v} != 1:\n        {v} = {v} // 2 if {v} % 2 == 0 else 3 * {v} + 1\n"
         "        steps += 1\n    return steps\n"),
        f"    digits = 0\n    while {v} > 0:\n        digits += {v} % 10\n        {v} //= 10\n    return digits\n",
        f"    power = 1\n    while power * 2 <= {v}:\n        power *= 2\n    return power\n",
    ))
    return f"def {f}({v}):\n{body}\nresult = {f}({int(rng.integers(2, 200))})\n"


def _classify(rng) -> str:
    f, v = _pick(rng, ("classify", "grade", "bucket", "size_of")), _pick(rng, _VARS)
    lo = int(rng.integers(1, 20))
    hi = lo + int(rng.integers(5, 30))
    words = _pick(rng, (("small", "medium", "large"), ("low", "mid", "high"), ("cold", "warm", "hot")))
    return (f"def {f}({v}):\n    if {v} < {lo}:\n        return \"{words[0]}\"\n    elif {v} < {hi}:\n"
            f"        return \"{words[1]}\"\n    else:\n        return \"{words[2]}\"\n\n"
            f"result = {f}({int(rng.integers(0, hi + 10))})\n")


def _word_count(rng) -> str:
    f, w = _pick(rng, ("count_words", "histogram", "tally")), _pick(rng, ("word", "w", "token"))
    words = " ".join(_pick(rng, _WORDS) for _ in range(int(rng.integers(3, 8))))
    return (f"def {f}(text):\n    counts = {{}}\n    for {w} in text.split():\n"
            f"        counts[{w}] = counts.get({w}, 0) + 1\n    return counts\n\nresult = {f}(\"{words}\")\n")


def _strings(rng) -> str:
    f, s = _pick(rng, ("shout", "reverse_words", "initials", "title_case")), _pick(rng, ("text", "s", "sentence"))
    body = {"shout": f"{s}.upper() + \"!\"", "reverse_words": f"\" \".join(reversed({s}.split()))",
            "initials": f"\"\".join(w[0] for w in {s}.split())", "title_case": f"{s}.title()"}[f]
    words = " ".join(_pick(rng, _WORDS) for _ in range(int(rng.integers(2, 5))))
    return f"def {f}({s}):\n    return {body}\n\nresult = {f}(\"{words}\")\n"


def _recurrence(rng) -> str:
    f, v = _pick(rng, ("factorial", "fib", "triangular")), _pick(rng, ("n", "k", "m"))
    body = {
        "factorial": f"    out = 1\n    for i in range(2, {v} + 1):\n        out *= i\n    return out\n",
        "fib": f"    a, b = 0, 1\n    for _ in range({v}):\n        a, b = b, a + b\n    return a\n",
        "triangular": f"    return sum(range({v} + 1))\n",
    }[f]
    return f"def {f}({v}):\n{body}\nresult = {f}({int(rng.integers(1, 12))})\n"


def _helper(rng) -> str:
    g, f, v = _pick(rng, ("square", "double", "halve")), _name(rng), _pick(rng, ("x", "v", "t"))
    expr = {"square": f"{v} * {v}", "double": f"2 * {v}", "halve": f"{v} / 2"}[g]
    return (f"def {g}({v}):\n    return {expr}\n\n\ndef {f}(xs):\n    return sum({g}(x) for x in xs)\n\n"
            f"result = {f}({_ints(rng, int(rng.integers(2, 6)), 0, 10)})\n")


PROGRAM_TEMPLATES: dict[str, object] = {
    "arithmetic": _arithmetic, "filtered sum": _filtered_sum, "comprehension": _comprehension,
    "largest": _largest, "formatting": _formatting, "while loop": _while_loop, "classify": _classify,
    "word count": _word_count, "strings": _strings, "recurrence": _recurrence, "helper": _helper,
}


def program_corpus(n: int, seed: int = 0) -> list[str]:
    """``n`` small Python programs: each defines a function (or two) and ends with
    ``result = f(...)``, so running it leaves its value in ``result``. Templates (see
    ``PROGRAM_TEMPLATES``) cover arithmetic, list processing, string formatting, loops and
    conditionals; names, operators and constants vary."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int; got {n!r}")
    rng = np.random.default_rng([seed, 13])
    templates = list(PROGRAM_TEMPLATES.values())
    return [templates[rng.integers(len(templates))](rng) for _ in range(n)]
