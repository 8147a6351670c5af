"""OpenAI's Responses API for clients (Codex CLI, Copilot CLI, the AI SDK), translated for
any model server; with the state Ollama does not keep: stored responses, chained by
``previous_response_id``, readable and deletable by the key that made them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.types import Receive, Scope, Send

from ..context import context
from ..dialects.responses.codec import ResponsesAsk
from ..dialects.responses.kept import KeptResponses
from ..dialects.responses.request import conversation_items, references
from ..dialects.responses.response import new_id, response_of
from ..dialects.responses.schema import ResponsesRequest
from ..dialects.responses.store import StoredResponse
from ..errors import BadRequest, NotFound
from ..gateway import Gateway, gateway
from ..stream.encode import SSE
from .body import read_request, request_schema
from .replies import json_reply
from .routed import relay_response

router = APIRouter(prefix="/v1", tags=["OpenAI Responses"])
KEPT = ("completed", "incomplete")


@router.post("/responses", openapi_extra=request_schema(ResponsesRequest))
async def create_response(request: Request) -> Response:
    gw, raw, payload = await read_request(request, ResponsesRequest)
    ctx = context(request)
    history: list[dict[str, Any]] = []
    previous = payload.get("previous_response_id")
    if isinstance(previous, str):
        stored = await gw.responses.get(ctx.owner, previous)
        if stored is None:
            raise NotFound(f"Previous response with id '{previous}' not found.")
        history = stored.items
    ask = ResponsesAsk(
        payload,
        raw,
        "responses",
        "chat",
        payload.get("stream") is True,
        SSE,
        response_id=new_id("resp"),
        history=history,
        referenced=await _referenced(gw, ctx.owner, payload, history),
        builtin_tools=gw.settings.builtin_tools,
    )
    relayed = relay_response(gw, ask, ctx)
    if payload.get("store") is False:
        return relayed
    return Keeping(relayed, gw.responses, ctx.owner, ask)


class Keeping(Response):
    """A relayed response, kept in the store once it finished (completed or incomplete)."""

    def __init__(self, inner: Response, kept: KeptResponses, owner: str, ask: ResponsesAsk) -> None:
        self._inner, self._kept, self._owner, self._ask = inner, kept, owner, ask
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._inner(scope, receive, send)
        response = self._ask.response
        if response is None or response.get("status") not in KEPT:
            return
        ask = self._ask
        items = conversation_items(ask.payload, ask.history, response, ask.referenced)
        record = StoredResponse(response, [listed(item) for item in items])
        self._kept.keep(self._owner, self._ask.response_id, record)


async def _referenced(
    gw: Gateway, owner: str, payload: dict[str, Any], history: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The stored items, by id, that the input's ``item_reference``s name outside its chain,
    each read from the record of the response whose output it was (its id names it)."""
    found: dict[str, dict[str, Any]] = {}
    for name in references(payload, history):
        response_id = response_of(name)
        stored = await gw.responses.get(owner, response_id) if response_id else None
        for item in stored.items if stored else ():
            if item.get("id") == name:
                found[name] = item
    return found


def listed(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as the API lists it: with an id, a message's text as content parts."""
    if item.get("id") is None:
        item = {"id": new_id("msg" if item.get("type", "message") == "message" else "item"), **item}
    content = item.get("content")
    if item.get("type", "message") == "message" and isinstance(content, str):
        part = "output_text" if item.get("role") == "assistant" else "input_text"
        item = {**item, "type": "message", "content": [{"type": part, "text": content}]}
    return item


@router.get("/responses/{response_id}")
async def retrieve_response(response_id: str, request: Request) -> Response:
    stored = await _stored(request, response_id)
    return json_reply(stored.response)


@router.delete("/responses/{response_id}")
async def delete_response(response_id: str, request: Request) -> Response:
    if not await gateway(request).responses.delete(context(request).owner, response_id):
        raise _missing(response_id)
    return json_reply({"id": response_id, "object": "response", "deleted": True})


@router.get("/responses/{response_id}/input_items")
async def input_items(
    response_id: str,
    request: Request,
    order: str = "desc",
    limit: int = 20,
    after: str | None = None,
) -> Response:
    """The items this response was given (earlier turns of its chain included), as a page."""
    if order not in ("asc", "desc") or not 1 <= limit <= 100:
        raise BadRequest("invalid request: order is asc or desc, limit from 1 to 100")
    stored = await _stored(request, response_id)
    produced = {item.get("id") for item in stored.response.get("output") or ()}
    given = [item for item in stored.items if item.get("id") not in produced or not item.get("id")]
    if order == "desc":
        given.reverse()
    if after is not None:
        ids = [item.get("id") for item in given]
        given = given[ids.index(after) + 1 :] if after in ids else []
    page = given[:limit]
    return json_reply(
        {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(given) > limit,
        }
    )


async def _stored(request: Request, response_id: str) -> StoredResponse:
    stored = await gateway(request).responses.get(context(request).owner, response_id)
    if stored is None:
        raise _missing(response_id)
    return stored


def _missing(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.")
