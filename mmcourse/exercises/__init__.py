"""Self-checking exercises: ``check("39.1.patchify", my_patchify)`` runs hidden cases.

Each section's module here (``ch39.py``, ``s39_2.py``, ...) registers its exercises when this package is
imported; ``check`` never raises, it prints one line per outcome (a pass, or the first failing case
with a hint) and returns ``True`` or ``False``. Built in §39.1.
"""
import importlib
import pkgutil

from .core import Case, available, check, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "core":
        importlib.import_module(f"{__name__}.{_module.name}")  # registers that module's exercises

__all__ = ["Case", "available", "check", "register"]
