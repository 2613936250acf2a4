"""The rule-based planner: the offline stand-in for an LLM that picks tools.

No small local LLM installable here chooses tools reliably (a 135M model
picked the first listed tool every time), so offline the agent's model node is
this deterministic planner. It is a LangChain chat model, so the graph is the
same one an LLM drives: it reads the conversation and answers with the tool
calls an LLM would make, one per step, then with a templated explanation.

Rules, in order:
* a reference to an earlier result ("#3", "the second one") with "more like"
  -> image_search of that record; with "text/say/label" -> ocr of it; with
  "describe/what is" -> caption of it;
* a refinement ("only 2019", "only the ones with a price tag", "drop the
  screenshots") -> the previous search again with the filter added;
* an attached image with "text/say/label/read" -> ocr of it, then text_search
  of what it reads, then image_search of the image; other attached images ->
  image_search;
* anything else -> text_search of the words, with any year or price filter.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agent.conversation import ATTACHED, SEARCH_TOOLS, Turn, read_turn
from tools.records import ToolName

LABEL = "rule-based planner"
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
             "eighth": 8, "ninth": 9, "tenth": 10, "last": -1}
_REFERENCE = re.compile(r"#\s?(\d+)|\b(?:number|no\.?|result)\s?(\d+)\b|\bthe (" + "|".join(_ORDINALS) +
                        r")(?: one| result| picture| image| photo)?\b", re.I)
_WANTS_TEXT = re.compile(r"\b(text|says?|said|read|written|writing|label|printed|ocr)\b", re.I)
_WANTS_MORE = re.compile(r"\b(more like|similar to|like (?:this|that|the|#)|looks? like|others like)\b", re.I)
_WANTS_CAPTION = re.compile(r"\b(describe|description|caption|what is (?:in|on|shown)|what's (?:in|on))\b", re.I)
_REFINE = re.compile(r"^\s*(only|just|but only|now only|drop|exclude|remove|without|hide|keep only|filter)\b", re.I)
_YEAR = re.compile(r"\b(?:in|from|during|taken in|of)\s+((?:19|20)\d\d)\b", re.I)
_PRICE_BELOW = re.compile(r"\b(?:under|below|less than|cheaper than)\s*\$?€?£?\s*(\d+(?:[.,]\d+)?)", re.I)
_PRICE_ABOVE = re.compile(r"\b(?:over|above|more than)\s*\$?€?£?\s*(\d+(?:[.,]\d+)?)", re.I)
_HAS_PRICE = re.compile(r"\b(with|having|has) (?:a )?price", re.I)
_SCREENSHOTS = re.compile(r"\bscreen ?shots?\b", re.I)
_FILLER = re.compile(r"^\s*(?:please\s+)?(?:find|show(?: me)?|search(?: for)?|look(?: for)?|get|where(?:'s| is)"
                     r"|do (?:we|you|i) have|any)\s+", re.I)
_ARTICLES = re.compile(r"^(?:the|a|an|all|my)\s+", re.I)
_NAMED = re.compile(r"\b(?:from|by|at|called|named)\s+(?P<name>\S.*)$", re.I)
SCREENSHOT_NAMES = ("screenshot", "screen shot")


@dataclass(frozen=True)
class Step:
    tool: ToolName
    reason: str
    args: Callable[[Turn], dict[str, Any]]  # computed when the step runs (it may read earlier steps)


def reference(text: str, records: list[dict]) -> dict | None:
    """The earlier record a message points at ("#3", "the second one"), if any."""
    match = _REFERENCE.search(text)
    if not match or not records:
        return None
    number = match.group(1) or match.group(2)
    index = int(number) if number else _ORDINALS[match.group(3).lower()]
    if index == -1:
        index = len(records)
    return records[index - 1] if 1 <= index <= len(records) else None


def filters(text: str) -> list[dict[str, Any]]:
    """Typed filter conditions a message asks for (years, prices, no screenshots); see store.filters."""
    years = sorted({int(year) for year in _YEAR.findall(text)})
    found: list[dict[str, Any]] = []
    if len(years) == 1:
        found.append(_condition("year", "=", years[0]))
    elif years:
        found.append(_condition("year", "in", years))
    if below := _PRICE_BELOW.search(text):
        found.append(_condition("price", "<", float(below.group(1).replace(",", "."))))
    if above := _PRICE_ABOVE.search(text):
        found.append(_condition("price", ">", float(above.group(1).replace(",", "."))))
    if _HAS_PRICE.search(text) and not (below or above):
        found.append(_condition("price", "is set"))
    if _SCREENSHOTS.search(text) and re.search(r"\b(drop|exclude|remove|without|hide|no)\b", text, re.I):
        found += [_condition("file_name", "not contains", name) for name in SCREENSHOT_NAMES]
    return found


def _condition(column: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"column": column, "op": op, "value": value}


def describe_filters(conditions: list[dict[str, Any]]) -> str:
    """The conditions in words, for the explanation ("year = 2018 and price is set")."""
    return " and ".join(f"{c['column']} {c['op']}" + (f" {c['value']}" if c.get("value") is not None else "")
                        for c in conditions)


def search_words(text: str) -> str:
    """The words to search for, without filler and filter phrases; a named source is quoted.

    "find the receipt from BOOK TA .K SDN BHD" searches for ``receipt "BOOK TA .K SDN BHD"``: the quoted
    name must then appear verbatim, which is what a user means by a shop's or a sender's name.
    """
    words = _FILLER.sub("", text)
    for pattern in (_YEAR, _PRICE_BELOW, _PRICE_ABOVE):
        words = pattern.sub("", words)
    words = _ARTICLES.sub("", words.strip(" ?.!"))
    if (named := _NAMED.search(words)) and '"' not in words:
        words = f'{words[:named.start()].strip()} "{named.group("name").strip()}"'.strip()
    return words or text


def _ocr_query(turn: Turn) -> dict[str, Any]:
    """text_search arguments from the OCR step's most confident lines."""
    ocr = next((r.result for r in turn.runs if r.name == ToolName.OCR and r.result), {}) or {}
    lines = sorted(ocr.get("lines", []), key=lambda line: -line["confidence"])
    words = " ".join(line["text"] for line in lines[:3] if len(line["text"]) >= 3)
    return {"query": words or "(no text)", "k": 10}


def plan(turn: Turn) -> list[Step]:
    text = turn.request
    record = reference(text, turn.previous_records)
    if record is not None:
        rid = record["id"]
        name = f"#{turn.previous_records.index(record) + 1} ({record['file_name']})"
        if _WANTS_MORE.search(text):
            return [Step(ToolName.IMAGE_SEARCH, f"you asked for pictures like {name}",
                         lambda t: {"record_id": rid, "k": 10, "filters": filters(text)})]
        if _WANTS_TEXT.search(text):
            return [Step(ToolName.OCR, f"you asked what the text on {name} says", lambda t: {"record_id": rid})]
        if _WANTS_CAPTION.search(text):
            return [Step(ToolName.CAPTION, f"you asked what {name} shows", lambda t: {"record_id": rid})]

    wanted = filters(text)
    previous = turn.previous_search
    if previous is not None and wanted and (_REFINE.match(text) or not search_words(text).strip()):
        args = {**previous.args, "filters": [*previous.args.get("filters", []), *wanted]}
        reason = f"you narrowed the previous {previous.name} with: {describe_filters(wanted)}"
        return [Step(ToolName(previous.name), reason, lambda t: args)]

    if turn.image:
        if _WANTS_TEXT.search(text):
            return [
                Step(ToolName.OCR, "you asked about the text in your image", lambda t: {"image": ATTACHED}),
                Step(ToolName.TEXT_SEARCH, "to find records that carry the text your image shows", _ocr_query),
                Step(ToolName.IMAGE_SEARCH, "to find records that show the same thing",
                     lambda t: {"image": ATTACHED, "k": 10}),
            ]
        return [Step(ToolName.IMAGE_SEARCH, "you gave an image: I look for the same picture, copies and similar ones",
                     lambda t: {"image": ATTACHED, "k": 10, "filters": wanted})]

    return [Step(ToolName.TEXT_SEARCH, "you asked in words: I search printed text, captions, tags and metadata",
                 lambda t: {"query": search_words(text), "k": 10, "filters": wanted})]


def explain(steps: list[Step], turn: Turn) -> str:
    """The templated explanation once every step ran."""
    lines = [f"({LABEL}) " + " ".join(f"I ran {step.tool}: {step.reason}." for step in steps)]
    found = sum(len(run.result.get("records", [])) for run in turn.runs if run.result)
    errors = [run.result["error"] for run in turn.runs if run.result and run.result.get("error")]
    if errors:
        lines.append("Something went wrong: " + "; ".join(errors))
    ocr_texts = [run.result.get("text", "") for run in turn.runs if run.name == ToolName.OCR and run.result]
    for text in ocr_texts:
        lines.append("The text reads: " + (text.replace("\n", " / ") if text else "(no text found)"))
    captions = [run.result for run in turn.runs if run.name == ToolName.CAPTION and run.result and "text" in run.result]
    for caption in captions:
        lines.append(f"It shows ({caption['kind']}): {caption['text']}")
    if any(run.name in SEARCH_TOOLS for run in turn.runs) and not found and not errors:
        notes = [run.result.get("note", "") for run in turn.runs if run.result and run.result.get("note")]
        lines.append("I found nothing that matches well enough to show. " + " ".join(notes))
    return "\n".join(lines)


class RuleBasedPlanner(BaseChatModel):
    """A chat model whose 'thinking' is :func:`plan`: deterministic, offline, labelled as such."""

    @property
    def _llm_type(self) -> str:
        return "loupe-rule-based-planner"

    def bind_tools(self, tools: Any, **kwargs: Any) -> RuleBasedPlanner:
        return self  # the plan names the tools itself

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        turn = read_turn(messages)
        steps = plan(turn)
        done = len(turn.runs)
        if done < len(steps):
            step = steps[done]
            call = {"name": step.tool.value, "args": step.args(turn), "id": f"call_{uuid.uuid4().hex[:12]}"}
            message = AIMessage(content="", tool_calls=[call])
        else:
            message = AIMessage(content=explain(steps, turn))
        return ChatResult(generations=[ChatGeneration(message=message)])
