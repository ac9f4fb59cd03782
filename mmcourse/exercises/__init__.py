"""Self-checking exercises: ``check("39.1.patchify", my_patchify)`` runs hidden cases.

Each chapter's module registers its exercises; ``check`` never raises, it prints one line per
outcome (a pass, or the first failing case with a hint) and returns ``True`` or ``False``.
Built in §39.1.
"""
from .core import Case, available, check, register
from . import ch39  # noqa: F401  (registers the chapter's exercises)

__all__ = ["Case", "available", "check", "register"]
