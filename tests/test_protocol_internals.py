"""What protocol.py, conduit.py and server.py read of uvicorn beyond its public interface,
checked against the installed uvicorn.

``pyproject.toml`` pins uvicorn to the versions these pass on. A release that renames
or reshapes one of these internals fails here, by name, instead of at run time
(a conduit that never opens, or writes a body in the wrong framing).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.supervisors import Multiprocess

from cortex.conduit import ClientConduit
from cortex.protocol import BoundedHttpToolsProtocol, protocol_factory
from tests.fakes.connection import Answer, connect, finished, request


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


async def quiet_app(scope: Any, receive: Any, send: Any) -> None:
    pass


def test_uvicorn_builds_a_protocol_from_a_callable_with_keyword_arguments() -> None:
    factory = protocol_factory(2048, 1.5)
    config = Config(quiet_app, http=factory, ws="none")
    config.load()
    assert config.http_protocol_class is factory, "Config.load keeps a non-string http as is"
    create = inspect.getsource(uvicorn.Server.startup)
    for keyword in ("config=config", "server_state=", "app_state=", "_loop=_loop"):
        assert keyword in create, f"uvicorn.Server builds the protocol without {keyword!r}"
    parameters = list(inspect.signature(HttpToolsProtocol.__init__).parameters)
    assert parameters == ["self", "config", "server_state", "app_state", "_loop"]


def test_worker_processes_are_started_from_a_config_and_sockets() -> None:
    parameters = list(inspect.signature(Multiprocess.__init__).parameters)
    assert parameters == ["self", "config", "sockets"], "server.serve calls Multiprocess so"


def test_the_protocol_keeps_its_app_loop_transport_and_flow_control() -> None:
    async def scenario() -> None:
        protocol, transport = connect(HttpToolsProtocol, quiet_app)
        assert protocol.app is protocol.config.loaded_app
        assert protocol.loop is asyncio.get_running_loop()
        assert protocol.transport is transport
        assert isinstance(protocol.flow, FlowControl)
        assert protocol.flow.write_paused is False
        protocol.pause_writing()
        assert protocol.flow.write_paused is True
        protocol.resume_writing()
        assert protocol.flow.write_paused is False

    run(scenario)


def test_the_cycle_is_made_in_on_headers_complete_and_its_app_runs_later() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    async def scenario() -> None:
        protocol, _ = connect(HttpToolsProtocol, quiet_app)
        protocol.app = app  # read when the request's head is complete, not when built
        protocol.data_received(request())
        cycle = protocol.cycle
        assert isinstance(cycle, RequestResponseCycle)
        assert cycle.scope is protocol.scope
        assert seen == [], "the app runs in a task of its own, after on_headers_complete"
        protocol.scope["extensions"] = {"added": {}}
        await asyncio.sleep(0.01)
        assert seen == [cycle.scope] and seen[0]["extensions"] == {"added": {}}

    run(scenario)


def test_the_cycle_says_when_the_whole_body_is_in_and_receive_then_does_not_wait() -> None:
    """``ClientConduit.body_arrived`` reads ``cycle.more_body``; ``api/body.py`` then takes
    the body in one ``receive`` without a clock."""
    got: list[object] = []
    head_only = request(body=b'{"a": 1}')[:-3]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        cycle = send.__self__
        got.append(cycle.more_body)
        await asyncio.sleep(0.01)
        got.append(cycle.more_body)
        got.append(await receive())
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    async def scenario() -> None:
        protocol, _ = connect(HttpToolsProtocol, app)
        protocol.data_received(head_only)
        await asyncio.sleep(0)
        protocol.data_received(b" 1}")
        await finished(protocol)

    run(scenario)
    assert got == [True, False, {"type": "http.request", "body": b'{"a": 1}', "more_body": False}]


def test_the_cycle_tells_how_its_response_is_framed_and_when_it_ends() -> None:
    states: list[tuple[bool | None, bool, bool]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        cycle = send.__self__
        states.append((cycle.chunked_encoding, cycle.response_complete, cycle.disconnected))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        states.append((cycle.chunked_encoding, cycle.response_complete, cycle.disconnected))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        states.append((cycle.chunked_encoding, cycle.response_complete, cycle.disconnected))

    async def scenario() -> None:
        protocol, transport = connect(HttpToolsProtocol, app)
        protocol.data_received(request())
        assert protocol.cycle.transport is transport
        await finished(protocol)
        assert states == [(None, False, False), (True, False, False), (True, True, False)]

    run(scenario)


def test_a_body_written_by_the_conduit_is_framed_as_uvicorn_frames_its_own() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        conduit = scope["extensions"]["cortex.conduit"]["conduit"]
        assert isinstance(conduit, ClientConduit)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"uno\n", "more_body": True})
        conduit.write(b"dos\n")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def scenario() -> None:
        protocol, transport = connect(protocol_factory(2048, 1.0), app)
        assert isinstance(protocol, BoundedHttpToolsProtocol)
        protocol.data_received(request())
        await finished(protocol)
        assert transport.written.endswith(b"\r\n4\r\nuno\n\r\n4\r\ndos\n\r\n0\r\n\r\n")
        answer = Answer(bytes(transport.written))
        assert answer.headers[b"transfer-encoding"] == b"chunked"
        assert answer.complete and answer.body == b"uno\ndos\n"

    run(scenario)


def test_the_client_going_away_marks_the_cycle_and_ends_a_paused_write() -> None:
    gone = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await gone.wait()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def scenario() -> None:
        protocol, transport = connect(HttpToolsProtocol, app)
        protocol.data_received(request())
        await asyncio.sleep(0.01)
        cycle = protocol.cycle
        protocol.pause_writing()
        transport.drop()
        gone.set()
        assert cycle.disconnected is True
        assert protocol.flow.write_paused is False
        await finished(protocol)

    run(scenario)


def test_a_response_head_goes_out_with_the_first_bytes_of_its_body() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"uno\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"dos\n", "more_body": False})

    async def scenario() -> None:
        protocol, transport = connect(protocol_factory(2048, 1.0), app)
        protocol.data_received(request())
        await finished(protocol)
        assert transport.writes == 2  # head with uno, then dos with the end
        answer = Answer(bytes(transport.written))
        assert answer.complete and answer.body == b"uno\ndos\n"

    run(scenario)


def test_a_head_whose_body_is_late_still_goes_out_in_the_same_turn() -> None:
    written_before_the_body: list[bytes] = []
    transports: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.05)  # a stream whose first part takes a while
        written_before_the_body.append(bytes(transports[0].written))
        await send({"type": "http.response.body", "body": b"uno\n", "more_body": False})

    async def scenario() -> None:
        protocol, transport = connect(protocol_factory(2048, 1.0), app)
        transports.append(transport)
        protocol.data_received(request())
        await finished(protocol)
        assert written_before_the_body[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert written_before_the_body[0].endswith(b"\r\n\r\n")
        assert Answer(bytes(transport.written)).body == b"uno\n"

    run(scenario)
