"""The notebooks' checks of what their text claims, and how a failed one speaks to a reader.

Every notebook ends its sections with hidden check cells (tag ``remove-cell``, first line
:data:`MARKER`) whose ``assert`` statements test the claims of the text: an accuracy reached, an
equivalence, a shape. On this
project's machines they must all hold; on a reader's machine a training run rounds differently
(another processor, thread count or library version adds floating-point numbers in another
order), so a trained accuracy can land a little off the value the book measured.

:func:`install` (called by :func:`mmcourse.utils.setup`, the first cell of every notebook)
rewrites the ``assert`` statements of every later check cell, as pytest rewrites those of a test,
into calls of :func:`check`, which knows the values on both sides of a comparison. Other cells,
a reader's own among them, keep their plain ``assert``. In a check cell:

* strict mode (``MMCOURSE_STRICT=1``, set by the Makefile for the book build and the tests): a
  failed check raises ``AssertionError`` with the values, as a plain ``assert`` would;
* a reader's session (the default): a failed check prints what was expected and what this run
  got, says that differences of this size come from hardware, and the notebook goes on;
* record mode (``MMCOURSE_CHECK_LOG=path``): every check, passed or not, is appended to ``path``
  as one JSON line, and nothing raises. ``scripts/thread_sweep.py`` uses it to measure how far
  each checked number moves with the number of threads (BOOK.md §3, item 10).

Built for the whole book; the margins of the checks carry the spread measured across 1–4 threads
as a comment (``# 1-4 threads: 0.962-0.981``).
"""
from __future__ import annotations

import ast
import json
import math
import numbers
import operator
import os
import textwrap
from typing import Any, Callable

_OPERATORS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Eq: ("==", operator.eq), ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt), ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt), ast.GtE: (">=", operator.ge),
    ast.Is: ("is", operator.is_), ast.IsNot: ("is not", operator.is_not),
    ast.In: ("in", lambda a, b: a in b), ast.NotIn: ("not in", lambda a, b: a not in b),
}
_SYMBOL_TO_FUNCTION = {symbol: function for symbol, function in _OPERATORS.values()}
#: the first line of every check cell: only those cells' ``assert`` statements are rewritten
MARKER = "# Checks of the text's claims"
HARDWARE_NOTE = ("Differences of a few points like this one come from the hardware: another "
                 "processor, thread count or library version adds floating-point numbers in "
                 "another order, and a training run drifts with it. The text's values were "
                 "measured on the book's 2-core CPU; a large difference points to a change in "
                 "the code. (MMCOURSE_STRICT=1 turns this note into an error.)")


def strict() -> bool:
    """Whether a failed check raises: ``MMCOURSE_STRICT=1`` (the Makefile sets it)."""
    return os.environ.get("MMCOURSE_STRICT", "") == "1"


def _show(value: Any, limit: int = 120) -> str:
    """A short text for a checked value: floats to 4 significant digits, long reprs cut."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return f"{float(value):.4g}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it: numbers as numbers, anything else as its short repr."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(float(value)) else str(value)
    try:  # 0-d tensors and arrays
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            return _plain(value.item())
    except (TypeError, ValueError, RuntimeError):
        pass
    return _show(value)


def _record(entry: dict[str, Any]) -> None:
    path = os.environ.get("MMCOURSE_CHECK_LOG")
    if path:
        entry = {"notebook": os.environ.get("MMCOURSE_NOTEBOOK", ""), **entry}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def check(passed: Any, source: str, message: Callable[[], Any] | None = None,
          operands: tuple[tuple[str, Any], ...] = ()) -> None:
    """Report one checked claim. ``passed`` is the claim's truth value; ``source`` its code;
    ``message`` a callable giving the assert's message (called only on failure); ``operands``
    the ``(code, value)`` pairs of a comparison's sides.

    Raises ``AssertionError`` in strict mode when the claim fails; prints a note otherwise.
    """
    ok = bool(passed)
    if os.environ.get("MMCOURSE_CHECK_LOG"):
        _record({"source": source, "passed": ok,
                 "values": [[code, _plain(value)] for code, value in operands]})
        return
    if ok:
        return
    got = ", ".join(f"{code} = {_show(value)}" for code, value in operands
                    if not is_literal(code))
    detail = "" if message is None else _show(message(), limit=400)
    if detail in {_show(value) for _, value in operands}:
        detail = ""  # the message only repeats a value shown already
    if strict():
        raise AssertionError("; ".join(part for part in (source, got, detail) if part))
    lines = [f"A check of the text did not hold on this machine: {source}"]
    if got:
        lines.append(f"  this run got: {got}")
    if detail:
        lines.append(f"  details: {detail}")
    lines += textwrap.wrap(HARDWARE_NOTE, width=88, initial_indent="  ",
                           subsequent_indent="  ")
    print("\n".join(lines))


def compare(source: str, message: Callable[[], Any] | None, codes: tuple[str, ...],
            symbols: tuple[str, ...], *values: Any) -> None:
    """Check a comparison chain ``values[0] symbols[0] values[1] ...`` (what ``assert a <= b < c``
    becomes after :class:`AssertRewriter`); the operands are evaluated once, left to right."""
    passed = all(_SYMBOL_TO_FUNCTION[s](a, b) for s, a, b in zip(symbols, values, values[1:]))
    check(passed, source, message, tuple(zip(codes, values)))


def is_literal(code: str) -> bool:
    """Whether ``code`` is a literal (``0.95``, ``"yes"``): a value not worth reporting."""
    try:
        ast.literal_eval(code)
        return True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


class AssertRewriter(ast.NodeTransformer):
    """Turns ``assert test, msg`` into a call of :func:`check` (or :func:`compare` when ``test``
    is a comparison), so that a failed claim can be reported with its values instead of raised.
    ``assert`` inside functions defined in a cell is rewritten too, and ``assert a and b`` becomes
    two checks. With ``active`` (a callable), a cell is rewritten only while it returns True."""

    MODULE = "__mmcourse_checks__"

    def __init__(self, active: Callable[[], bool] | None = None) -> None:
        self.active = active

    def visit_Module(self, node: ast.Module) -> ast.Module:
        if self.active is not None and not self.active():
            return node
        self.generic_visit(node)
        return node

    def visit_Assert(self, node: ast.Assert) -> ast.AST | list[ast.AST]:
        if isinstance(node.test, ast.BoolOp) and isinstance(node.test.op, ast.And):
            # ``assert a and b, msg`` checks ``a`` then ``b``: each reported with its own values
            return [self.visit_Assert(ast.copy_location(ast.Assert(test, node.msg), node))
                    for test in node.test.values]
        source = ast.unparse(node.test)
        message: ast.expr = ast.Constant(None)
        if node.msg is not None:
            message = ast.Lambda(args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[],
                                                    kw_defaults=[], defaults=[]), body=node.msg)
        test = node.test
        if isinstance(test, ast.Compare) and all(type(op) in _OPERATORS for op in test.ops):
            operands = [test.left, *test.comparators]
            call = ast.Call(
                func=ast.Attribute(ast.Name(self.MODULE, ast.Load()), "compare", ast.Load()),
                args=[ast.Constant(source), message,
                      ast.Constant(tuple(ast.unparse(o) for o in operands)),
                      ast.Constant(tuple(_OPERATORS[type(op)][0] for op in test.ops)),
                      *operands],
                keywords=[])
        else:
            call = ast.Call(
                func=ast.Attribute(ast.Name(self.MODULE, ast.Load()), "check", ast.Load()),
                args=[test, ast.Constant(source), message], keywords=[])
        return ast.copy_location(ast.Expr(call), node)


class _CheckCellSeen:
    """An IPython input transformer that notes whether the cell about to run is a check cell
    (its first line starts with :data:`MARKER`); it leaves the cell's text as it is."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, lines: list[str]) -> list[str]:
        self.seen = bool(lines) and lines[0].startswith(MARKER)
        return lines


def install(shell: Any | None = None) -> bool:
    """Rewrite the ``assert`` statements of every check cell (first line :data:`MARKER`) run
    after this one (IPython only).

    Returns whether it installed (False outside IPython). Installing twice is harmless.
    """
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None or not hasattr(shell, "ast_transformers"):
        return False
    import sys

    shell.user_ns[AssertRewriter.MODULE] = sys.modules[__name__]
    if not any(isinstance(t, AssertRewriter) for t in shell.ast_transformers):
        seen = _CheckCellSeen()
        shell.input_transformers_post.append(seen)
        shell.ast_transformers.append(AssertRewriter(active=lambda: seen.seen))
    return True
