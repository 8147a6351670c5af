"""Prompts for a base (not instruction-tuned) model: the chat as a plain transcript.

Chat templates make a small base model echo its prompt; a transcript with a
preamble, two worked exchanges of several paragraphs (``examples.py``) and
``User:``/``Assistant:`` turns in the conversation's own language, cut at the next
turn, gives it something it can continue at length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..chat import Message
from . import examples


@dataclass(frozen=True, slots=True)
class Voice:
    preamble: str
    user: str
    assistant: str
    shots: tuple[tuple[str, str], ...] = ()  # worked exchanges: a question and a long answer


VOICES = {
    "es": Voice(
        "Una conversación entre un usuario y un asistente amable que responde siempre en "
        "español, con respuestas largas y detalladas de varios párrafos.",
        "Usuario",
        "Asistente",
        examples.SPANISH,
    ),
    "en": Voice(
        "A conversation between a user and a friendly assistant who always answers in "
        "English, with long and detailed answers of several paragraphs.",
        "User",
        "Assistant",
        examples.ENGLISH,
    ),
}
SPANISH_HINTS = re.compile(
    r"[ñáéíóú¿¡]|\b(el|la|los|las|una?|que|por|para|cómo|como|sobre|mi|es|y|de|del)\b",
    re.IGNORECASE,
)


def language_of(text: str) -> str:
    """``"es"`` when the text reads as Spanish, else ``"en"`` (a cheap, good-enough guess)."""
    words = max(len(text.split()), 1)
    return "es" if len(SPANISH_HINTS.findall(text)) / words >= 0.2 else "en"


def render(messages: list[Message], *, shots: bool = True) -> tuple[str, list[str]]:
    """The transcript prompt, ending with the assistant's open turn, and its stop sequences
    (the next turn of either side). ``shots=False`` leaves the worked exchanges out."""
    user_text = " ".join(m.content for m in messages if m.role == "user")
    voice = VOICES[language_of(user_text)]
    lines = [voice.preamble]
    for question, answer in voice.shots if shots else ():  # first: the same for every request
        lines += ["", f"{voice.user}: {question}", f"{voice.assistant}: {answer}"]
    if shots and voice.shots:
        lines.append("")
    lines += [m.content.strip() for m in messages if m.role == "system" and m.content.strip()]
    for m in messages:
        if m.role == "user":
            lines.append(f"{voice.user}: {m.content.strip()}")
        elif m.role == "assistant":
            lines.append(f"{voice.assistant}: {m.content.strip()}")
    lines.append(f"{voice.assistant}:")
    # A small model may write the next turn's name with a space before the colon.
    names = [v.user for v in VOICES.values()] + [v.assistant for v in VOICES.values()]
    stops = [f"\n{name}{colon}" for name in names for colon in (":", " :")]
    return "\n".join(lines), [*stops, f"{voice.user}:"]
