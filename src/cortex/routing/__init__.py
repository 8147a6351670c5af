"""Choosing a backend for each request: circuits, affinity, the admission queue, health."""

from .circuit import Circuit
from .member import Backend, Lease, Member, is_backend_fault
from .router import Router

__all__ = ["Backend", "Circuit", "Lease", "Member", "Router", "is_backend_fault"]
