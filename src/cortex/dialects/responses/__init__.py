"""OpenAI's Responses API as a codec: its requests read into ``cortex.chat``, events
written as its named-event stream or one response object, and the store behind
``store`` and ``previous_response_id``."""

from .request import chat_request, conversation_items
from .tools import BuiltinPolicy
from .writer import ResponsesWriter

__all__ = ["BuiltinPolicy", "ResponsesWriter", "chat_request", "conversation_items"]
