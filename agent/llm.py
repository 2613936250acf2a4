"""The chat model behind the agent, chosen by ``[llm] backend``: one registered factory per backend.

* ``rule-based`` - the deterministic planner (offline default);
* ``openai`` - OpenAI's API, key from ``OPENAI_API_KEY``;
* ``openai-compatible`` - any chat-completions server at ``base_url``
  (vLLM, llama.cpp server, Ollama); a key is sent only if one is set;
* ``local`` - a GGUF model run in this process by llama.cpp (``pip install -e ".[llm]"``);
* ``hybrid`` - the planner's tool calls, the local model's words (agent/hybrid.py).

Nothing here counts tokens, so tiktoken never downloads its encodings.
"""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel

from loupe.agent.planner import RuleBasedPlanner
from loupe.base.config import LLMSettings, Settings
from loupe.base.errors import ConfigError
from loupe.tools.models.registry import ModelKind, ModelSpec, families, load, parse, register


def make_chat_model(llm: LLMSettings) -> BaseChatModel:
    """The chat model ``llm.backend`` names, from the model registry."""
    return load(parse(ModelKind.LLM, llm.backend), Settings(llm=llm))


@register(ModelKind.LLM, "rule-based")
def _rule_based(spec: ModelSpec, settings: Settings) -> BaseChatModel:
    return RuleBasedPlanner()


@register(ModelKind.LLM, "openai", extra="openai")
def _openai(spec: ModelSpec, settings: Settings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    if not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError("the openai LLM backend needs OPENAI_API_KEY; or use backend rule-based "
                          "(offline) or openai-compatible with base_url for a local server")
    return ChatOpenAI(model=settings.llm.model, temperature=0, base_url=settings.llm.base_url or None)


@register(ModelKind.LLM, "openai-compatible", extra="openai")
def _openai_compatible(spec: ModelSpec, settings: Settings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    llm = settings.llm
    if not llm.base_url:
        raise ConfigError("the openai-compatible LLM backend needs base_url, e.g. http://127.0.0.1:8080/v1")
    return ChatOpenAI(model=llm.model, temperature=0, base_url=llm.base_url,
                      api_key=os.environ.get("OPENAI_API_KEY") or "not-needed", max_retries=1, timeout=120)


@register(ModelKind.LLM, "local", extra="llm")
def _local(spec: ModelSpec, settings: Settings) -> BaseChatModel:
    from loupe.agent.local_llm import LocalChatModel, local_model
    from loupe.tools.models.gguf import gguf_path
    from loupe.tools.models.resolver import default_cache_dir

    return LocalChatModel(model_path=str(gguf_path(local_model(settings.llm), default_cache_dir())))


@register(ModelKind.LLM, "hybrid", extra="llm")
def _hybrid(spec: ModelSpec, settings: Settings) -> BaseChatModel:
    from loupe.agent.hybrid import MAX_WORDS_TOKENS, HybridModel

    return HybridModel(writer=_local(spec, settings).model_copy(update={"max_tokens": MAX_WORDS_TOKENS}))


def backend_names() -> list[str]:
    """The registered LLM backends, for the UI's choice."""
    return [family.name for family in families(ModelKind.LLM)]


def backend_label(llm: LLMSettings) -> str:
    if llm.backend == "rule-based":
        return "rule-based planner (offline, no LLM)"
    if llm.backend == "hybrid":
        from loupe.agent.local_llm import local_model

        return f"rule-based planner's tools, words by local model {local_model(llm)}"
    if llm.backend == "local":
        from loupe.agent.local_llm import local_model

        return f"local model {local_model(llm)} (llama.cpp, in process)"
    return f"{llm.backend} model {llm.model}" + (f" at {llm.base_url}" if llm.base_url else "")
