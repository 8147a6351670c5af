"""The clients: one request at a time in a random framing and scenario, some hanging up
early; every answer read to its end judged by the tests' invariant, and tallied."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from harness.machine import HOST

from suites.soak.cortex import SoakCortex
from suites.soak.scenarios import Scenario
from tests.invariant import (
    FRAMINGS,
    ClientFraming,
    Reply,
    Violation,
    judge,
    parse_response,
    request_bytes,
)

CLIENT_TIMEOUT = 30.0  # an answer not over by then is a hang (Córtex's own limits are ~2 s)


@dataclass
class Tally:
    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[dict[str, Any]] = field(default_factory=list)
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    by_scenario: Counter[str] = field(default_factory=Counter)

    def violation_count(self) -> int:
        return sum(v for k, v in self.outcomes.items() if k.startswith("violation"))

    def note(self, bucket: list[dict[str, Any]], entry: dict[str, Any]) -> None:
        if len(bucket) < 20:
            bucket.append(entry)


async def one_request(
    cortex: SoakCortex,
    framing: ClientFraming,
    scenario: Scenario,
    leave_after: int | None,
    secrets: tuple[str, ...],
    tally: Tally,
) -> None:
    """One request on a fresh connection: read to the end and judge it, or leave early."""
    tally.requests += 1
    tally.by_scenario[scenario.name] += 1
    where = {"cortex": cortex.kind, "framing": framing.name, "scenario": scenario.name}
    try:
        reader, writer = await asyncio.open_connection(HOST, cortex.port)
    except OSError as exc:
        tally.outcomes["connect-failed"] += 1
        tally.note(tally.violations, {**where, "problem": f"cannot connect: {exc}"})
        return
    data = bytearray()
    try:
        writer.write(request_bytes(framing, framing.payload(f"soak-{scenario.name}")))
        if leave_after == 0:  # hang up before any answer, while Córtex waits for the upstream
            await asyncio.sleep(random.random() * 0.05)
            tally.outcomes["client-left"] += 1
            return
        async with asyncio.timeout(CLIENT_TIMEOUT):
            while chunk := await reader.read(65536):
                data += chunk
                if leave_after is not None and len(data) >= leave_after:
                    tally.outcomes["client-left"] += 1
                    return
    except TimeoutError:
        tally.outcomes["violation: hang"] += 1
        tally.note(tally.violations, {**where, "problem": f"no end in {CLIENT_TIMEOUT:g} s"})
        return
    except ConnectionError as exc:
        tally.outcomes["violation: connection broken"] += 1
        tally.note(tally.violations, {**where, "problem": f"{exc!r} after {len(data)} bytes"})
        return
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    judge_reply(parse_or_none(bytes(data)), framing, scenario, secrets, where, tally)


def parse_or_none(data: bytes) -> Reply | None:
    try:
        return parse_response(data)
    except (Violation, ValueError, IndexError):
        return None


def judge_reply(
    reply: Reply | None,
    framing: ClientFraming,
    scenario: Scenario,
    secrets: tuple[str, ...],
    where: dict[str, Any],
    tally: Tally,
) -> None:
    if reply is None:
        tally.outcomes["violation: no response"] += 1
        tally.note(
            tally.violations, {**where, "problem": "the connection closed without a response"}
        )
        return
    expected = scenario.text if scenario.expect != "error" else None
    try:
        verdict = judge(framing, reply, expected, secrets=secrets)
    except Violation as exc:
        kind = (
            "silent truncation" if "truncation" in str(exc) or "cut short" in str(exc) else "broken"
        )
        tally.outcomes[f"violation: {kind}"] += 1
        tally.note(
            tally.violations,
            {
                **where,
                "problem": str(exc)[:500],
                "raw": reply.raw[-600:].decode("utf-8", "replace"),
            },
        )
        return
    if verdict.outcome == "complete":
        tally.outcomes["complete"] += 1
    else:
        tally.outcomes["error in-band" if verdict.in_band else f"error {verdict.status}"] += 1
    if scenario.expect != "either" and verdict.outcome != scenario.expect:
        tally.outcomes[f"unexpected {verdict.outcome}"] += 1
        tally.note(
            tally.unexpected,
            {**where, "got": verdict.outcome, "status": verdict.status, "error": verdict.error},
        )


async def client(
    rng: random.Random,
    stop_at: float,
    cortexes: list[SoakCortex],
    cases: list[Scenario],
    disconnect_rate: float,
    secrets: tuple[str, ...],
    tally: Tally,
) -> None:
    weights = [c.weight for c in cases]
    while time.monotonic() < stop_at:
        cortex = rng.choice(cortexes)
        framing = rng.choice(FRAMINGS)
        scenario = rng.choices(cases, weights)[0]
        leave_after = None
        if rng.random() < disconnect_rate:
            leave_after = rng.choice([0, 1, rng.randint(100, 2000), rng.randint(2000, 20000)])
        await one_request(cortex, framing, scenario, leave_after, secrets, tally)
