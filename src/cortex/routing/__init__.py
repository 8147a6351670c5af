"""Choosing a backend for each request: circuits, affinity, the admission queue, health."""

from .circuit import Circuit
from .member import Backend, Lease, Member
from .router import Router

__all__ = ["Backend", "Circuit", "Lease", "Member", "Router"]
