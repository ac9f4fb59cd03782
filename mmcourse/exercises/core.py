"""The machinery behind :func:`check`: hidden cases, comparison, and one-line feedback."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class Case:
    """One hidden case: call the learner's function with ``args``/``kwargs`` and compare with
    ``expected``. ``describe`` says in words what the input was; ``hint`` is shown on failure."""

    args: tuple
    expected: Any
    describe: str
    kwargs: dict = field(default_factory=dict)
    hint: str = ""


_REGISTRY: dict[str, tuple[Callable[[], list[Case]], float]] = {}


def register(name: str, make_cases: Callable[[], list[Case]], atol: float = 1e-5) -> None:
    """Register exercise ``name``; ``make_cases()`` builds its hidden cases when it is checked."""
    _REGISTRY[name] = (make_cases, atol)


def available() -> list[str]:
    """The names of all registered exercises."""
    return sorted(_REGISTRY)


def _to_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x


def _compare(got, expected, atol: float) -> str | None:
    """``None`` if ``got`` matches ``expected``, else a sentence saying how it differs."""
    got, expected = _to_numpy(got), _to_numpy(expected)
    if isinstance(expected, np.ndarray):
        if not isinstance(got, np.ndarray):
            return f"expected an array or tensor, got {type(got).__name__}"
        if got.shape != expected.shape:
            return f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        if not np.allclose(got.astype(float), expected.astype(float), atol=atol, rtol=0):
            diff = np.abs(got.astype(float) - expected.astype(float))
            k = np.unravel_index(diff.argmax(), diff.shape)
            return (f"the shape is right but values differ (largest difference {diff.max():.3g} "
                    f"at index {tuple(int(i) for i in k)})")
        return None
    if isinstance(expected, float):
        try:
            ok = abs(float(got) - expected) <= atol * max(1.0, abs(expected))
        except (TypeError, ValueError):
            return f"expected a number, got {type(got).__name__}"
        return None if ok else f"expected {expected:.6g}, got {float(got):.6g}"
    if got != expected:
        return f"expected {expected!r}, got {got!r}"
    return None


def check(name: str, fn: Callable, verbose: bool = True) -> bool:
    """Run the hidden cases of exercise ``name`` against ``fn``; print the outcome, return success."""
    if name not in _REGISTRY:
        print(f"❓ no exercise called {name!r}; available: {', '.join(available())}")
        return False
    if not callable(fn):
        print(f"❌ {name}: expected a function, got {type(fn).__name__}")
        return False
    make_cases, atol = _REGISTRY[name]
    cases = make_cases()
    for k, case in enumerate(cases, 1):
        try:
            got = fn(*case.args, **case.kwargs)
        except NotImplementedError:
            print(f"✋ {name}: not implemented yet — replace the `raise NotImplementedError` with your code.")
            return False
        except Exception as err:  # the learner's error, reported in one line
            print(f"❌ {name}, case {k} of {len(cases)} ({case.describe}): your function raised "
                  f"{type(err).__name__}: {err}")
            return False
        problem = _compare(got, case.expected, atol)
        if problem is not None:
            hint = f" Hint: {case.hint}" if case.hint else ""
            print(f"❌ {name}, case {k} of {len(cases)} ({case.describe}): {problem}.{hint}")
            return False
    if verbose:
        print(f"✅ {name}: all {len(cases)} hidden cases pass.")
    return True
