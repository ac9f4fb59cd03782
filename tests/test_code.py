"""Code: plotting programs that redraw their scene, a guarded runner, a corpus of runnable programs."""
import ast

import matplotlib
import numpy as np
import pytest

from mmcourse.data.code import PROGRAM_TEMPLATES, program_corpus, render_code, scene_to_code
from mmcourse.data.shapes import COLORS, ShapesWorld

matplotlib.use("Agg")


def _object_masks(image: np.ndarray, scene) -> np.ndarray:
    """(H, W) int: for each pixel, the index of the nearest colour in [background, scene colours]."""
    palette = np.array([scene.background] + [COLORS[c] for c in dict.fromkeys(o.color for o in scene.objects)])
    return ((image[:, :, None].astype(int) - palette[None, None]) ** 2).sum(-1).argmin(-1)


def test_rendered_code_looks_like_the_scene():
    world = ShapesWorld(seed=0)
    ious = []
    for i in range(30):
        scene = world.scene(i)
        image = render_code(scene_to_code(scene))
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        a, b = _object_masks(image, scene), _object_masks(scene.image, scene)
        for k in range(1, a.max(initial=0) + 1):  # each colour's mask
            ious.append(((a == k) & (b == k)).sum() / ((a == k) | (b == k)).sum())
        assert np.all(image[0, 0] == scene.background) or any(o.box[0] == 0 for o in scene.objects)
    assert min(ious) > 0.7 and np.mean(ious) > 0.9, (min(ious), np.mean(ious))


def test_code_is_short_readable_and_scales_with_image_size():
    scene = ShapesWorld(seed=0, image_size=32).scene(2)
    code = scene_to_code(scene)
    tree = ast.parse(code)
    imports = {n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
               for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    assert imports <= {"matplotlib.pyplot", "numpy", "matplotlib.patches"}
    assert all(f"# {o.phrase}" in code for o in scene.objects) and len(code.splitlines()) < 40
    assert render_code(code, image_size=32).shape == (32, 32, 3)
    assert render_code(code, image_size=96).shape == (96, 96, 3)


def test_render_code_leaves_no_figure_open_and_ignores_show():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    code = scene_to_code(ShapesWorld(seed=0).scene(0)) + "plt.show()\n"
    render_code(code)
    assert plt.get_fignums() == before


@pytest.mark.parametrize("code, name", [
    ("import os\n", "'os'"),
    ("import subprocess as sp\n", "'subprocess'"),
    ("from pathlib import Path\n", "'pathlib'"),
    ("import numpy.ctypeslib, sys\n", "'sys'"),
    ("open('/tmp/x', 'w')\n", "'open'"),
    ("eval('1')\n", "'eval'"),
    ("__import__('os')\n", "'__import__'"),
    ("x = ().__class__\n", "'__class__'"),
    ("import matplotlib.pyplot as plt\nplt.savefig('/tmp/x.png')\n", "'savefig'"),
    ("import numpy as np\nnp.save('/tmp/x.npy', np.zeros(2))\n", "'save'"),
    ("import matplotlib\nmatplotlib.use('TkAgg')\n", "'use'"),
])
def test_render_code_refuses_other_modules_and_names(code, name):
    with pytest.raises(ValueError) as err:
        render_code(code)
    assert name in str(err.value)
    if "import" in str(err.value):
        assert "allowed modules: numpy, matplotlib" in str(err.value)


def test_render_code_errors():
    with pytest.raises(ValueError, match="drew no figure"):
        render_code("import numpy as np\nx = np.zeros(3)\n")
    with pytest.raises(ValueError, match="does not parse"):
        render_code("def (:\n")
    with pytest.raises(ValueError, match="image_size"):
        render_code(scene_to_code(ShapesWorld(seed=0).scene(0)), image_size=0)
    with pytest.raises(ValueError, match="expected a ShapesWorld Scene"):
        scene_to_code("a red circle")


def test_program_corpus_parses_runs_and_varies():
    programs = program_corpus(300, seed=0)
    assert len(programs) == 300 and programs == program_corpus(300, seed=0)
    assert programs != program_corpus(300, seed=1)
    assert len(set(programs)) > 250  # varied
    node_kinds, names = set(), set()
    for code in programs:
        tree = ast.parse(code)
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert functions and isinstance(tree.body[-1], ast.Assign) and tree.body[-1].targets[0].id == "result"
        names |= {f.name for f in functions}
        node_kinds |= {type(n).__name__ for n in ast.walk(tree)}
        namespace = {}
        exec(compile(tree, "<program>", "exec"), namespace)
        assert namespace["result"] is not None
    # arithmetic, list processing, string formatting, loops and conditionals all occur
    assert {"BinOp", "ListComp", "JoinedStr", "For", "While", "If", "Compare", "Return", "Call"} <= node_kinds
    assert len(names) > 30


def test_each_template_computes_what_it_says():
    by_kind = {}
    for code in program_corpus(400, seed=3):
        namespace = {}
        exec(code, namespace)
        fn = next(v for k, v in namespace.items() if callable(v) and k in code.split("result = ")[1])
        by_kind.setdefault(fn.__name__, []).append(fn)
    assert by_kind["factorial"][0](5) == 120 and by_kind["fib"][0](10) == 55 and by_kind["triangular"][0](4) == 10
    assert by_kind["shout"][0]("a b") == "A B!" and by_kind["reverse_words"][0]("a b c") == "c b a"
    assert by_kind["count_words"][0]("a b a") == {"a": 2, "b": 1}
    assert len(PROGRAM_TEMPLATES) >= 10
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        program_corpus(-1)
