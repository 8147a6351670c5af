"""The ``cortex`` command: ``serve``, ``chat``, ``models``, ``keys`` and ``usage``."""

from .main import main

__all__ = ["main"]
