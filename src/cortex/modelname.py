"""When two spellings name the same model: one rule for keys, the catalogue and the router.

Ollama reads a name as ``[host/][namespace/]model[:tag]`` and fills in what is left out
(``types/model/name.go``): the host ``registry.ollama.ai``, the namespace ``library``, the
tag ``latest``. So ``llama3.2``, ``library/llama3.2`` and
``registry.ollama.ai/library/llama3.2:latest`` are one model, which ``/api/tags`` and
``/api/ps`` list as ``llama3.2:latest``. Córtex compares every name by ``canonical``, so a
key allowed a name is allowed exactly the models the router serves under that name:

- A tag is what follows the last ``:`` after the last ``/`` (``host:5000/m`` has none).
- OpenAI-compatible servers list names without tags (``Qwen/Qwen3-8B``, ``gpt-oss-20b``);
  the rule holds for them too, and as they match names exactly, the router sends them the
  name they listed (``Member.upstream_name``).
- Case counts, as in Ollama's lookup on Linux and in OpenAI-compatible servers.
- Nothing else is folded: not spaces, not ``@digest`` (Ollama's parser no longer reads
  one), not Ollama's ``:cloud`` suffix (another model, on other machines).

Model lists keep the names the servers gave; only comparisons use ``canonical``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

DEFAULT_TAG = "latest"
DEFAULT_HOST = "registry.ollama.ai/"
DEFAULT_NAMESPACE = "library/"


def has_tag(name: str) -> bool:
    return name.rfind(":") > name.rfind("/")


@lru_cache(maxsize=4096)  # a few names, compared on every request
def canonical(name: str) -> str:
    """The name as Ollama lists it: its default host and namespace left out, its tag added."""
    if not name:
        return name
    if name.startswith(DEFAULT_HOST) and name.count("/") == 2:
        name = name.removeprefix(DEFAULT_HOST)
    if name.startswith(DEFAULT_NAMESPACE) and name.count("/") == 1:
        name = name.removeprefix(DEFAULT_NAMESPACE)
    return name if has_tag(name) else f"{name}:{DEFAULT_TAG}"


def same_model(a: str, b: str) -> bool:
    return a == b or canonical(a) == canonical(b)


def pick(names: Iterable[str], name: str) -> str | None:
    """The listed name that ``name`` names: itself if listed, else one of the same model."""
    listed = list(names)
    if name in listed:
        return name
    wanted = canonical(name)
    return next((n for n in listed if canonical(n) == wanted), None)
