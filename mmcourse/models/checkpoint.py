"""Saving a model with its configuration in one safetensors file, the format of the checkpoints the
book ships in ``data/`` (CLIP in §40.1, the tiny LM in §40.4)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path


class SafetensorsCheckpoint:
    """Mixin for an ``nn.Module`` built as ``cls(config)`` from a dataclass ``config``: the class
    sets ``config_class`` (that dataclass) and ``config_name`` (how error messages name it).
    Built in §40.1."""

    config_class: type
    config_name: str

    def save_checkpoint(self, path: str | Path, tokenizer=None, notes: str = "") -> None:
        """Write the weights to a safetensors file at ``path``, with the configuration (and the
        vocabulary of ``tokenizer``, any object with a ``vocab`` list, and free-text ``notes``) as
        JSON in its metadata."""
        from safetensors.torch import save_file

        metadata = {"config": json.dumps(asdict(self.config)), "notes": notes}
        if tokenizer is not None:
            metadata["vocab"] = json.dumps(tokenizer.vocab)
        # cloned: safetensors refuses tensors that share memory (a tied head and embedding)
        state = {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
        save_file(state, str(path), metadata=metadata)

    @classmethod
    def from_checkpoint(cls, path: str | Path):
        """The model saved by ``save_checkpoint`` at ``path`` (e.g. a file in the repository's
        ``data/``), in eval mode."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        if "config" not in metadata:
            raise ValueError(f"{path} has no {cls.config_name} in its metadata; "
                             f"expected a file written by {cls.__name__}.save_checkpoint")
        model = cls(cls.config_class(**json.loads(metadata["config"])))
        model.load_state_dict(load_file(str(path)))
        return model.eval()
