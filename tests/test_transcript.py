"""Prompt rendering for the embedded base model."""

from __future__ import annotations

import pytest

from cortex.chat import Message
from cortex.embedded.transcript import language_of, render


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Escribe un cuento corto para mi hija sobre un unicornio", "es"),
        ("Explica paso a paso cómo hacer una tortilla española", "es"),
        ("Cuenta una historia larga sobre piratas", "es"),
        ("Tell me a short story about a pirate", "en"),
        ("What is the capital of France?", "en"),
    ],
)
def test_language_of_the_seed_prompts(text: str, language: str) -> None:
    assert language_of(text) == language


CONVERSATION = [
    Message("system", "Responde siempre con cariño."),
    Message("user", "Hola, ¿cómo estás?"),
    Message("assistant", "Muy bien, gracias."),
    Message("user", "Escribe un cuento sobre un unicornio"),
]


def test_spanish_conversation_renders_as_a_spanish_transcript() -> None:
    prompt, stops = render(CONVERSATION, shots=False)
    lines = prompt.split("\n")
    assert lines[0].startswith("Una conversación entre un usuario y un asistente")
    assert lines[1] == "Responde siempre con cariño."
    assert lines[2:] == [
        "Usuario: Hola, ¿cómo estás?",
        "Asistente: Muy bien, gracias.",
        "Usuario: Escribe un cuento sobre un unicornio",
        "Asistente:",
    ]
    assert "\nUsuario:" in stops
    assert "\nAsistente:" in stops  # the model starting another turn of its own ends it
    assert "\nUsuario :" in stops  # as a small model sometimes writes the next turn


def test_the_worked_exchanges_come_first_in_the_conversations_language() -> None:
    prompt, _ = render(CONVERSATION)
    plain, _ = render(CONVERSATION, shots=False)
    preamble, _, conversation = plain.partition("\n")
    assert prompt.startswith(preamble + "\n\nUsuario: ")  # the same for every request: cached
    assert prompt.endswith("\n\n" + conversation)
    shots = prompt[len(preamble) : -len(conversation)]
    assert shots.count("\nUsuario: ") == 2 and shots.count("\nAsistente: ") == 2
    assert "dragón" in shots and "Lighthouse" not in shots
    english, _ = render([Message("user", "Tell me about the sea")])
    assert "lighthouse" in english and "dragón" not in english


def test_english_conversation_stops_at_the_next_user_turn() -> None:
    prompt, stops = render([Message("user", "Tell me about the sea")])
    assert prompt.endswith("User: Tell me about the sea\nAssistant:")
    assert "\nUser:" in stops
