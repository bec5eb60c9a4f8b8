"""The save / load methods every checkpointable kanext module shares."""
from __future__ import annotations


class Checkpointed:
    """Mixin: ``save`` / ``load`` through :mod:`kanext.checkpoint` (a JSON
    config plus safetensors tensors, no pickle)."""

    def save(self, path, *, metadata=None):
        """Writes <path>.json (config) + <path>.safetensors (tensors), no pickle;
        see :func:`kanext.checkpoint.save`."""
        from .checkpoint import save

        return save(self, path, metadata=metadata)

    @classmethod
    def load(cls, path, device=None):
        """Reads a checkpoint written by :meth:`save`, bit for bit; a checkpoint
        of another class is an error. See :func:`kanext.checkpoint.load`."""
        from .checkpoint import load

        return load(path, device, expect=cls)
