"""What the upstream does per request (the fake picks it by model name), and what a client
that stays must get; the fake, counting the requests it is still answering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakes import FakeOllama, Script
from tests.fakes.transport import Conn, Request

TOKENS = ("Había", " una", " vez", " un", " 🦄", " en", " Ñuñoa")


@dataclass(frozen=True)
class Scenario:
    """What the upstream does, and what a client that stays must get."""

    name: str
    script: Script
    expect: str  # "complete", "error" or "either"
    weight: float = 1.0
    text: str | None = "".join(TOKENS)


def scenarios() -> list[Scenario]:
    long_tokens = tuple(f" palabra{i} ñ🦄" for i in range(300))
    base: dict[str, Any] = {"tokens": TOKENS}
    cases = [
        Scenario("none", Script(**base), "complete", 4),
        Scenario(
            "long_paced",
            Script(tokens=long_tokens, delay=0.002),
            "complete",
            2,
            "".join(long_tokens),
        ),
        Scenario("long_burst", Script(tokens=long_tokens), "complete", 2, "".join(long_tokens)),
        Scenario("split_lines", Script(**base, fault="split_lines", split_pause=0.001), "complete"),
        Scenario("split_utf8", Script(**base, fault="split_utf8", split_pause=0.001), "complete"),
        Scenario("no_trailing_newline", Script(**base, fault="no_trailing_newline"), "complete"),
        Scenario("header_delay", Script(**base, header_delay=0.2), "complete"),
        Scenario("stall_short", Script(**base, fault="stall_mid", stall=0.2), "complete"),
        Scenario("stall_before_first", Script(**base, fault="stall_before_first"), "error", 0.5),
        Scenario("stall_mid", Script(**base, fault="stall_mid", fault_after=3), "error", 0.5),
        Scenario("reset_mid", Script(**base, fault="reset_mid", fault_after=2), "error"),
        Scenario("reset_first", Script(**base, fault="reset_mid", fault_after=0), "error"),
        Scenario("close_mid", Script(**base, fault="close_mid", fault_after=2), "error"),
        Scenario("garbage", Script(**base, fault="garbage_line", fault_after=2), "either"),
        Scenario(
            "garbage_data",
            Script(**base, fault="garbage_line", fault_after=2, garbage=b"data: <html>\n\n"),
            "error",
        ),
        Scenario("error_line", Script(**base, error_line_after=2), "error"),
        Scenario("status_500", Script(**base, fault="status", status=500), "error"),
        Scenario(
            "status_502_html",
            Script(
                **base,
                fault="status",
                status=502,
                error_body=b"<html>bad gateway</html>",
                error_content_type="text/html",
            ),
            "error",
        ),
        Scenario("header_delay_long", Script(**base, header_delay=3600.0), "error", 0.5),
    ]
    return cases


class SoakUpstream(FakeOllama):
    """The fake, counting the requests it is still answering."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0

    async def _serve(self, conn: Conn, req: Request) -> bool:
        self.in_flight += 1
        try:
            return await super()._serve(conn, req)
        finally:
            self.in_flight -= 1
