"""A GGUF chat model run in this process by llama.cpp (``xllamacpp``): the ``local`` LLM backend.

A 0.5-1.5B model picks tools well only with help (measured by ``python -m loupe.evals.llm_runtimes``):

* a compact block before the system prompt: the tools in a line each, a few rules, and one correct
  call per situation (attached image, "read this", words, "#2" after results, a question about many
  receipts for the aggregate tool);
* llama.cpp's grammar, from a JSON schema, holds each reply to one JSON object: a call of a bound tool
  whose ``image``/``record_id`` can only be what the conversation holds, or ``{"answer": ...}``. Given
  Loupe's tools natively, these models wrote the call as fenced JSON text and repeated it until the
  token limit; the grammar also ends the reply as soon as the object closes;
* a parser that never raises: anything that is not a call of a bound tool becomes the reply's text,
  and the graph's validator judges the calls it gets.

The model is loaded once per process (a cache keyed by the file): loading takes seconds, and a turn
calls it two or three times, each reusing the cached system prompt (cold, it costs 10-30 s on 2 cores).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

from loupe.agent.conversation import ATTACHED, conversation_records, last_image
from loupe.base.config import LLMSettings
from loupe.base.errors import LoupeError

DEFAULT_MODEL = "qwen2.5-coder-1.5b"  # the right tool and argument 8 times of 8 (python -m loupe.evals.llm_runtimes)
MAX_CALLS = 4  # in one turn; the rule-based planner's longest turn makes 3

# Correct calls for this tool set, in the request shapes Loupe sees; ids are shaped like Loupe's.
LISTED = '(the last results listed "#1 id=0c1d2e3f4a5b6c7d ..." and "#2 id=7e8f9a0b1c2d3e4f ...")'
EXAMPLES = [
    ("text_search", "find the receipt from Golden Key Hardware", {"query": "Golden Key Hardware"}),
    ("image_search", "where else is this picture?\n[attached image: 4f1c2a9e0b7d3356]", {"image": "attached"}),
    ("ocr", "what does this label say?\n[attached image: 9a0b1c2d3e4f5a6b]", {"image": "attached"}),
    ("text_search", "photos of a dog on a beach", {"query": "dog on a beach"}),
    ("ocr", f"read the second one {LISTED}", {"record_id": "7e8f9a0b1c2d3e4f"}),
    ("image_search", f"more like that first one {LISTED}", {"record_id": "0c1d2e3f4a5b6c7d"}),
    ("aggregate", "how much did I spend at Golden Key Hardware in 2018?",
     {"measure": "sum", "shop": "Golden Key Hardware", "year": 2018}),
    ("aggregate", "when did I last go to Shell?", {"measure": "latest", "shop": "Shell"}),
]
RULES = """Rules: image="attached" only when the user's message ends with [attached image: ...]; never put that
key in record_id. No attached image: search the user's words with text_search (query = the shop, text or
thing named), except a question about many receipts (how many, how much in all, the most or least, when
last or first, which shop or month, what was bought): aggregate computes it; never add up amounts yourself.
"#2", "the second one", "that one": record_id = the id the last results gave that record."""
# An answer shown with the result it reads from: given a sentence alone, the 0.5B model copied it word for
# word, file name included; given a description in <...>, it answered with a list of tool names.
ANSWER_EXAMPLE = ('Tool result: text_search: 1 results\n#1 id=5e6f7a8b9c0d1e2f file="IMG_0412.jpg" text match '
                  'score=0.03 text="GOLDEN KEY HARDWARE"',
                  "text_search found the shop's name, GOLDEN KEY HARDWARE, printed on #1 IMG_0412.jpg.")


def tool_prompt(tools: list[dict[str, Any]]) -> str:
    """The block put before the system prompt: the reply format, the tools in one line each, rules, examples."""
    names = {tool["function"]["name"] for tool in tools}
    lines = ["Reply with exactly one JSON object: either a tool call "
             '{"name": "<tool>", "arguments": {...}} or, once the tool results answer the request, '
             '{"answer": "<your words>"}.', "Tools:"]
    for tool in tools:
        function = tool["function"]
        arguments = ", ".join(function.get("parameters", {}).get("properties", {}))
        summary = " ".join(function.get("description", "").split()).split(". ")[0]  # keeps the cold prompt short
        lines.append(f"- {function['name']}({arguments}): {summary}")
    lines += [RULES, "Examples:"]
    for name, request, arguments in EXAMPLES:
        if name in names:
            lines += [f"User: {request}", json.dumps({"name": name, "arguments": arguments})]
    result, answer = ANSWER_EXAMPLE
    lines += ["After tool results, answer from them in a sentence or two:", result, json.dumps({"answer": answer})]
    return "\n".join(lines)


def reply_schema(tools: list[dict[str, Any]], answer: bool, messages: list[BaseMessage]) -> dict[str, Any]:
    """The JSON schema a reply is held to: one call of a bound tool, or (when ``answer``) words.

    A tool that reads an ``image`` or a ``record_id`` (image_search, ocr, caption) may name only what
    this conversation holds: "attached" when the user attached an image, or an id its results listed;
    with neither it is not offered. The 0.5B model otherwise put the attachment's key in record_id and
    searched an "attached" image that did not exist.
    """
    attached = last_image(messages) is not None
    ids = list(dict.fromkeys(record.id for record in conversation_records(messages)))
    calls = []
    for tool in tools:
        parameters = tool["function"].get("parameters") or {"type": "object"}
        properties = parameters.get("properties", {})
        rest = {key: value for key, value in properties.items() if key not in ("image", "record_id")}
        reads = [(key, value) for key, value, usable in (("image", {"const": ATTACHED}, attached),
                                                        ("record_id", {"enum": ids}, bool(ids)))
                 if usable and key in properties]
        arguments = [{"type": "object", "additionalProperties": False, "required": [key],
                      "properties": {key: value, **rest}} for key, value in reads]
        if len(rest) < len(properties) and not arguments:
            continue
        calls.append({"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
                      "properties": {"name": {"const": tool["function"]["name"]},
                                     "arguments": {"anyOf": arguments} if arguments else parameters}})
    words = {"type": "object", "additionalProperties": False, "required": ["answer"],
             "properties": {"answer": {"type": "string"}}}
    return {"anyOf": [*calls, *([words] if answer or not calls else [])]}


def parse_reply(content: str, tool_names: set[str]) -> tuple[str, list[dict[str, Any]]]:
    """The text and the tool calls in a reply, whatever shape the model gave them (never raises).

    Accepted: a bare JSON object, one inside ``` fences or ``<tool_call>`` tags, and the doubled
    braces ``{{...}}`` some models copy from templates. Only the first call is taken (small models
    repeat it); a call of a tool that is not bound, or a malformed one, stays as text.
    """
    stripped = re.sub(r"</?tool_call>|```(?:json)?", "", content).strip()
    for candidate in (stripped, stripped.replace("{{", "{").replace("}}", "}")):
        start = candidate.find("{")
        if start < 0:
            break
        try:
            value, _ = json.JSONDecoder().raw_decode(candidate[start:])
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("answer"), str):
            return value["answer"], []
        if isinstance(value, dict) and value.get("name") in tool_names and isinstance(value.get("arguments"), dict):
            return "", [{"name": value["name"], "args": value["arguments"], "id": f"call_{uuid.uuid4().hex[:12]}"}]
    cut = re.match(r'\s*\{\s*"answer"\s*:\s*"', content)  # an answer cut off by the token limit
    return (content[cut.end():] if cut else content), []


def local_model(llm: LLMSettings) -> str:
    """The ``local`` backend's model: ``llm.model``, unless that is still the OpenAI default name."""
    return DEFAULT_MODEL if llm.model == LLMSettings.model else llm.model


_SERVERS: dict[tuple[str, int], Any] = {}


def server_for(path: str, n_ctx: int) -> Any:
    """The llama.cpp server for one GGUF file, loaded on first use and kept for the process."""
    if (path, n_ctx) not in _SERVERS:
        import xllamacpp  # only here: the rest of Loupe runs without the ``llm`` extra

        params = xllamacpp.CommonParams()
        params.model.path = path
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one slot, so each call reuses the cached prompt of the one before
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = len(os.sched_getaffinity(0))
        params.verbosity = -1  # llama.cpp logs every request otherwise
        # Read the weights into memory now, all of them: mmap'd and lazily prepared, they were paged in (and,
        # on a VM that reclaims page cache, paged in again) during calls, which then took 10-30 s more.
        params.load_mode = xllamacpp.llama_load_mode.LLAMA_LOAD_MODE_NONE
        params.lazy_mode = xllamacpp.llama_lazy_mode.LLAMA_LAZY_MODE_OFF
        _SERVERS[(path, n_ctx)] = xllamacpp.Server(params)
    return _SERVERS[(path, n_ctx)]


class LocalChatModel(BaseChatModel):
    """A GGUF model behind LangChain's chat-model interface, with tool calls held to the tools' schemas."""

    model_path: str
    n_ctx: int = 8192  # the system prompt, tool results of ten records and a few turns fit
    max_tokens: int = 384  # bounds a runaway reply; a call takes under 60 tokens, an answer ~100
    tools: list[dict[str, Any]] = []  # the bound tools' OpenAI schemas

    @property
    def _llm_type(self) -> str:
        return "xllamacpp"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable:
        """A copy of this model that may call ``tools`` (schemas from LangChain's OpenAI conversion)."""
        return self.model_copy(update={"tools": [convert_to_openai_tool(tool) for tool in tools]})

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        chat = to_openai(messages, tool_prompt(self.tools) if self.tools else "")
        if not self.tools:  # a writer of words (agent.hybrid): no format to hold it to
            text, calls = self._complete(chat, None)
        else:
            made = _calls_this_turn(messages)
            # A turn's first reply is a call: every request Loupe takes needs a search or a reading, and given
            # the choice the 0.5B model answered 3 of 8 requests with made-up words before looking. After
            # MAX_CALLS, or a call repeated (small models loop), it must answer with what it has.
            tools = self.tools if len(made) < MAX_CALLS else []
            text, calls = self._complete(chat, reply_schema(tools, bool(made), messages))
            if calls and (calls[0]["name"], calls[0]["args"]) in made:
                text, calls = self._complete(chat, reply_schema([], True, messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text, tool_calls=calls))])

    def _complete(self, chat: list[dict[str, Any]],
                  schema: dict[str, Any] | None) -> tuple[str, list[dict[str, Any]]]:
        """One reply of the model, held to ``schema`` (if any) by llama.cpp's grammar, parsed."""
        request = {"messages": chat, "temperature": 0, "max_tokens": self.max_tokens,
                   **({"json_schema": schema} if schema else {})}
        response = server_for(self.model_path, self.n_ctx).handle_chat_completions(request)
        if "error" in response:  # e.g. a conversation longer than n_ctx
            raise LoupeError(f"the local model {Path(self.model_path).name} failed: {response['error'].get('message')}")
        content = response["choices"][0]["message"].get("content") or ""
        return parse_reply(content, {tool["function"]["name"] for tool in self.tools}) if schema else (content, [])


def to_openai(messages: list[BaseMessage], preamble: str) -> list[dict[str, Any]]:
    """LangChain messages as chat-completions messages, ``preamble`` put before the system prompt.

    A tool call is shown as the JSON the model itself writes, so the history reads like its replies,
    and a tool result as a user turn, which is how Qwen's chat template renders one.
    """
    chat: list[dict[str, Any]] = []
    for message in messages:
        text = message.text
        if isinstance(message, SystemMessage):
            chat.append({"role": "system", "content": text})
        elif isinstance(message, HumanMessage):
            chat.append({"role": "user", "content": text})
        elif isinstance(message, AIMessage):
            calls = [json.dumps({"name": call["name"], "arguments": call["args"]}) for call in message.tool_calls]
            chat.append({"role": "assistant", "content": "\n".join(calls) or json.dumps({"answer": text})})
        elif isinstance(message, ToolMessage):
            chat.append({"role": "user", "content": f"Tool result:\n{text}"})
    if preamble:
        if chat and chat[0]["role"] == "system":
            chat[0] = {"role": "system", "content": f"{preamble}\n\n{chat[0]['content']}"}
        else:
            chat.insert(0, {"role": "system", "content": preamble})
    return chat


def _calls_this_turn(messages: list[BaseMessage]) -> list[tuple[str, dict[str, Any]]]:
    """The calls made since the user's last message, as (name, arguments)."""
    start = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=0)
    return [(call["name"], call["args"]) for m in messages[start:] if isinstance(m, AIMessage) for call in m.tool_calls]
