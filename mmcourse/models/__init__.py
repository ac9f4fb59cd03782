"""The book's models, written from scratch; each says where the book builds it.

Names are imported lazily (``from mmcourse.models import ViT`` loads only ``vit.py``), so a section
pays only for the models it uses. To add a model, add its names to ``_EXPORTS``.
"""
import importlib

_EXPORTS: dict[str, str] = {
    "ViT": "vit",
    "ViTConfig": "vit",
    "ViTOutput": "vit",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
