"""What bench/routing_sim.py runs, in full and with ``--quick``; the models and workloads' names."""

from __future__ import annotations

from dataclasses import dataclass

from harness.machine import ROOT
from sim_upstream import GB, Model

RULES = ("round-robin", "least-outstanding", "affinity", "state")
PLOT = ROOT / "docs" / "routing-ttft.png"
LLAMA = Model("llama3.1:8b", int(4.9 * GB), "llama", "8.0B")
QWEN = Model("qwen2.5:7b", int(4.7 * GB), "qwen2", "7.6B")
GEMMA = Model("gemma2:9b", int(5.4 * GB), "gemma2", "9.2B")
THREE = (LLAMA, QWEN, GEMMA)  # any two fit in 12 GB, not all three
SHARED, MODELS, TWICE = "shared-prefix", "three-models", "shared-prefix x2"
TWICE_REDIS = "shared-prefix x2 redis"


@dataclass(frozen=True)
class Plan:
    chats: int = 48  # shared-prefix conversations
    turns: int = 4
    chat_clients: int = 12
    system_prompts: int = 3
    system_chars: int = 6000
    documents: int = 6
    document_chars: int = 6000
    document_share: float = 0.5
    question_chars: tuple[int, int] = (100, 400)
    model_chats: int = 36  # three-models conversations
    model_turns: int = 2
    model_clients: int = 9
    model_system_chars: int = 1000
    model_weights: tuple[int, int, int] = (3, 2, 1)
    think_s: tuple[float, float] = (0.05, 0.4)  # between a conversation's turns
    backends: int = 3
    memory_gb: float = 12.0
    health_interval: float = 0.5
    seed: int = 20251202
    settings: tuple[str, ...] = ()  # TOML lines added to every Córtex's config (--set)


QUICK = Plan(
    chats=6, turns=3, chat_clients=6, model_chats=6, model_clients=6, think_s=(0.05, 0.2),
    health_interval=0.25,
)  # fmt: skip
