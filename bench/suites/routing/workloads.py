"""The workloads, seeded so that every rule gets the same: conversations and the servers."""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sim_upstream import GB, Model, ServerSpec

from suites.routing.plan import LLAMA, MODELS, RULES, SHARED, THREE, TWICE, TWICE_REDIS, Plan


@dataclass(frozen=True)
class Chat:
    id: int
    model: str
    system: str
    questions: tuple[str, ...]
    think_s: tuple[float, ...]


@dataclass(frozen=True)
class Workload:
    name: str
    servers: tuple[ServerSpec, ...]
    chats: tuple[Chat, ...]
    clients: int
    instances: int = 1
    redis: bool = False  # the instances share a redis-server
    rules: tuple[str, ...] = RULES


def text(rng: random.Random, chars: int, opening: str = "") -> str:
    words = [opening] if opening else []
    length = len(opening)
    while length < chars:
        word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9)))
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def questions(rng: random.Random, plan: Plan, turns: int) -> tuple[str, ...]:
    return tuple(text(rng, rng.randint(*plan.question_chars), "Question:") for _ in range(turns))


def thinking(rng: random.Random, plan: Plan, turns: int) -> tuple[float, ...]:
    return tuple(rng.uniform(*plan.think_s) for _ in range(turns))


def shared_prefix_chats(plan: Plan) -> tuple[Chat, ...]:
    rng = random.Random(plan.seed)
    opening = "You are assistant {}."
    systems = [text(rng, plan.system_chars, opening.format(i)) for i in range(plan.system_prompts)]
    documents = [text(rng, plan.document_chars, f"Document {i}:") for i in range(plan.documents)]
    chats = []
    for number in range(plan.chats):
        asked = list(questions(rng, plan, plan.turns))
        if rng.random() < plan.document_share:
            asked[0] = f"{rng.choice(documents)}\n\n{asked[0]}"
        think = thinking(rng, plan, plan.turns)
        chats.append(Chat(number, LLAMA.name, rng.choice(systems), tuple(asked), think))
    return tuple(chats)


def three_model_chats(plan: Plan) -> tuple[Chat, ...]:
    rng = random.Random(plan.seed + 1)
    systems = {m.name: text(rng, plan.model_system_chars, f"You are {m.name}.") for m in THREE}
    chats = []
    for number in range(plan.model_chats):
        model = rng.choices(THREE, weights=plan.model_weights)[0]
        asked = questions(rng, plan, plan.model_turns)
        think = thinking(rng, plan, plan.model_turns)
        chats.append(Chat(number, model.name, systems[model.name], asked, think))
    return tuple(chats)


def servers(plan: Plan, models: Sequence[Model]) -> tuple[ServerSpec, ...]:
    """The backends, ``gpu-1``…, each able to load ``models``, the i-th with the i-th loaded."""
    memory = int(plan.memory_gb * GB)
    return tuple(
        ServerSpec(f"gpu-{i + 1}", tuple(models), memory, (models[i % len(models)].name,))
        for i in range(plan.backends)
    )


def workloads(plan: Plan) -> list[Workload]:
    shared = Workload(SHARED, servers(plan, [LLAMA]), shared_prefix_chats(plan), plan.chat_clients)
    three = Workload(MODELS, servers(plan, THREE), three_model_chats(plan), plan.model_clients)
    twice = replace(shared, name=TWICE, instances=2)
    return [shared, three, twice, replace(twice, name=TWICE_REDIS, redis=True, rules=("state",))]
