"""Choosing a backend for each request: circuits, affinity, the admission queue, health."""

from .circuit import Circuit
from .failover import Failover
from .member import Backend, Lease, Member
from .router import Router

__all__ = ["Backend", "Circuit", "Failover", "Lease", "Member", "Router"]
