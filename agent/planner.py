"""The rule-based planner: the offline stand-in for an LLM that picks tools.

It is a LangChain chat model, so the graph is the same one an LLM drives: it
reads the conversation and answers with the tool calls an LLM would make, one
per step, then with an explanation written from the tool results. What the
words ask for is read by agent/intents.py. Rules, in order:

* a comparison over the last results ("which is the cheapest?", "the newest
  one") -> the previous search again, ordered by amount or date;
* a refinement ("only the March ones", "just 2017", "drop the screenshots")
  -> the previous search again with the filter added;
* a message about earlier results ("read that one", "the last two", "#3",
  "anything else like that?", "describe it", "when was it from?") -> ocr,
  image_search or caption of those records;
* an attached image with "read / copy the text / OCR / what's the total" ->
  ocr of it, and, if the message also asks to find it, text_search of what
  it reads and image_search of the image; other attached images ->
  image_search;
* a question the receipts' fields cannot answer ("what did I buy at ...?",
  "how much GST ...") -> no tool: the answer says what Loupe reads and what not;
* a question about the whole collection ("how much did I spend at AEON in
  2018?", "when did I last go to Shell?", "which shop do I spend the most
  at?") -> aggregate, which computes the figure: the planner never adds up;
  "how much did I spend at X?" with no date is a sum when X has several
  receipts, and a text search for the one receipt otherwise;
* anything else -> text_search of the words, with any date, price or order.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool

from loupe.agent import intents
from loupe.agent.conversation import ATTACHED, SEARCH_TOOLS, Turn, read_turn
from loupe.agent.wording import in_plain_words
from loupe.tools.document_fields import printed_date, printed_total
from loupe.tools.records import MatchedRecord, MatchLabel, ToolName

LABEL = "rule-based planner"
# The query of a request whose filter alone names its records: a request word only, so text search names no
# subject and lists every record the filter chooses (tools/text_search.py, filtered_rest)
FILTER_CHOOSES = "records"
CALL_PREFIX = "plan_"  # the planner's own call ids: after a fallback from an LLM it counts only its own steps


@dataclass(frozen=True)
class Step:
    tool: ToolName
    reason: str
    args: Callable[[Turn], dict[str, Any]]  # computed when the step runs (it may read earlier steps)


def _ocr_query(turn: Turn) -> dict[str, Any]:
    """text_search arguments from the OCR step's most confident lines."""
    ocr = next((r.result for r in turn.runs if r.name == ToolName.OCR and r.result), {}) or {}
    lines = sorted(ocr.get("lines", []), key=lambda line: -line["confidence"])
    words = " ".join(line["text"] for line in lines[:3] if len(line["text"]) >= 3)
    return {"query": words or "(no text)", "k": 10}


def _name(turn: Turn, record: MatchedRecord) -> str:
    return f"#{turn.previous_records.index(record) + 1} ({record.file_name})"


def plan(turn: Turn, receipts_at: Callable[[str], int] | None = None) -> list[Step]:
    """The steps for this turn. ``receipts_at`` counts the records whose printed shop matches a name (the
    aggregate tool's count): "how much did I spend at X?" adds up X's receipts only when there are several,
    since with one (or none read as X) text search finds the receipt however its name is printed, and reads it."""
    text = in_plain_words(turn.request)
    wanted = _of_receipts(intents.filters(text), text, turn.previous_records)
    ordered = intents.order(text)
    previous = turn.previous_search
    # a collection question's conditions are the question's, not a guess after it ("I suspect it was Christmas")
    asked_within = intents.filters(intents.question_part(text))
    asks_dated = any(c["column"] in ("date", "year") for c in asked_within)
    asked = None if turn.image else intents.aggregation(text, asks_dated, earlier_results=bool(turn.previous_records))
    if asked is not None and asked.shop and receipts_at is not None and not intents.names_a_shop(text, asked.shop) \
            and intents.only_ordinary_words(asked.shop) and not receipts_at(asked.shop):
        asked = dataclasses.replace(asked, shop="")  # "CNY 2018 i was running around like mad": no shop's name
    if asked is not None and asked.maybe_one and (receipts_at is None or receipts_at(asked.shop) < 2):
        asked = None
    about_all = asked is not None and bool(asked.shop or asked.group_by or asked.measure in ("count", "sum"))
    if previous is not None and (ordered or wanted) and not about_all \
            and intents.refines(text, str(previous.args.get("query", ""))):
        args = {**previous.args, "filters": [*previous.args.get("filters", []), *wanted]}
        changes = [f"filtered by {intents.describe_filters(wanted)}"] if wanted else []
        if ordered:
            args.update(ordered.to_dict())
            changes.append(f"ordered {ordered.words()}")
        reason = f"you narrowed the previous {previous.name}: " + " and ".join(changes)
        return [Step(ToolName(previous.name), reason, lambda t: args)]

    searched = str(previous.args.get("query", "")) if previous is not None else ""
    if previous is not None and previous.name == ToolName.TEXT_SEARCH and turn.previous_records and not turn.image \
            and not wanted and not ordered and (added := intents.narrowing_words(text, searched)):
        shown = {"column": "id", "op": "in", "value": [r.id for r in turn.previous_records][:50]}
        args = {"query": added, "k": 10, "filters": [*previous.args.get("filters", []), shown]}
        return [Step(ToolName.TEXT_SEARCH, f"you narrowed the previous results to those that match {added!r}",
                     lambda t: args)]

    records = intents.points_back(text, turn.previous_records, has_image=turn.image is not None and
                                  turn.image_is_new)
    if records:
        if intents.CAPTION.search(text) and not intents.TEXT.search(text):
            return [Step(ToolName.CAPTION, f"you asked what {_name(turn, r)} shows",
                         lambda t, rid=r.id: {"record_id": rid}) for r in records]
        if intents.MORE.search(text):
            record = records[0]
            return [Step(ToolName.IMAGE_SEARCH, f"you asked for pictures like {_name(turn, record)}",
                         lambda t: {"record_id": record.id, "k": 10, "filters": wanted})]
        return [Step(ToolName.OCR, f"you asked what {_name(turn, r)} says", lambda t, rid=r.id: {"record_id": rid})
                for r in records]

    if turn.image:
        if intents.TEXT.search(text) or intents.ASKS_TOTAL.search(text) or intents.ASKS_DATE.search(text) \
                or intents.ASKS_SHOP.search(text) or intents.ASKS_BOUGHT.search(text):
            read = Step(ToolName.OCR, "you asked about the text in your image", lambda t: {"image": ATTACHED})
            if not intents.FIND.search(text):
                return [read]
            return [read,
                    Step(ToolName.TEXT_SEARCH, "to find records that carry the text your image shows", _ocr_query),
                    Step(ToolName.IMAGE_SEARCH, "to find records that show the same thing",
                         lambda t: {"image": ATTACHED, "k": 10})]
        return [Step(ToolName.IMAGE_SEARCH, "you gave an image: I look for the same picture, copies and similar ones",
                     lambda t: {"image": ATTACHED, "k": 10, "filters": wanted})]

    if intents.unreadable(text):
        return []  # explain() says what Loupe reads instead
    if asked is not None:
        # A price asked of receipts is their printed total, the amount every aggregate is of.
        conditions = [{**c, "column": "total"} if c["column"] == "price" else c for c in asked_within]
        scope = f" at {asked.shop!r}" if asked.shop else ""
        per = f" per {asked.group_by}" if asked.group_by else ""
        return [Step(ToolName.AGGREGATE, f"you asked for the {asked.measure}{per}{scope} over every record, which "
                     "Loupe computes from the printed fields", lambda t: {**asked.to_dict(), "filters": conditions})]

    dated = any(c["column"] == "date" for c in wanted)
    words = FILTER_CHOOSES if dated and intents.named_by_date(text) else intents.search_words(text)
    args = {"query": words, "k": 10, "filters": wanted, **(ordered.to_dict() if ordered else {})}
    return [Step(ToolName.TEXT_SEARCH, "you asked in words: I search printed text, captions, tags and metadata",
                 lambda t: args)]


_RECEIPT_MONEY = re.compile(r"\b(?:receipts?|reciepts?|resits?|bills?|invoices?|ringgit|rm|myr)\b|\bRM\s?\d", re.I)


def _of_receipts(conditions: list[dict[str, Any]], text: str, shown: list[MatchedRecord]) -> list[dict[str, Any]]:
    """A price asked of receipts is their printed total: "which one is more than 100 ringgit?" after receipts were
    shown, or "receipts under RM 20"; a price stays the price a metadata file gives a catalogue item."""
    receipts = _RECEIPT_MONEY.search(text) or (shown and all(r.metadata.get("price") is None for r in shown)
                                                and any(r.metadata.get("total") is not None for r in shown))
    return [{**c, "column": "total"} if c["column"] == "price" and receipts else c for c in conditions]


def explain(steps: list[Step], turn: Turn) -> str:
    """The explanation once every step ran, written from the tool results only (an aggregate's figure is
    stated by the answer node, agent/graph.py, for every model alike)."""
    request = in_plain_words(turn.request)
    if not steps and (unread := intents.unreadable(request)):
        return (f"({LABEL}) I cannot answer that: Loupe reads four things from each receipt, the shop, the date, "
                f"the total and the items with their amounts, and {unread} is none of them, so any figure would be "
                "a guess. I can count or add up receipts by shop and date, find the latest or the largest receipt "
                "or item, or search for the receipts that print a word.")
    lines = [f"({LABEL}) " + " ".join(f"I ran {step.tool}: {step.reason}." for step in steps)]
    runs = [run for run in turn.runs if run.call_id.startswith(CALL_PREFIX) and run.result]
    errors = [run.result["error"] for run in runs if run.result.get("error")]
    if errors:
        lines.append("Something went wrong: " + "; ".join(errors))
    for run in runs:
        if run.name == ToolName.OCR and not run.result.get("error"):
            lines.append(_read_aloud(run.result))
        elif run.name == ToolName.CAPTION and "text" in run.result:
            lines.append(f"It shows ({run.result['kind']}): {run.result['text']}")
    searches = [run for run in runs if run.name in SEARCH_TOOLS and not run.result.get("error")]
    found = [record for run in searches for record in run.result.get("records", [])]
    if searches and not found and not errors:
        notes = " ".join(run.result.get("note", "") for run in searches if run.result.get("note"))
        lines.append("I found nothing that matches well enough to show. " + notes)
    elif found and found[0].match == MatchLabel.POSSIBLE:
        lines.append(f"I am not confident: no picture passed the bar for the same object, and "
                     f"{found[0].file_name} is only a possible match ({found[0].why}).")
    elif found and (intents.ASKS_TOTAL.search(request) or intents.ASKS_DATE.search(request)
                    or intents.order(request)):
        lines.append(_facts_of(found[0], "The first match"))
    return "\n".join(lines)


def _read_aloud(result: dict[str, Any]) -> str:
    """An OCR result in words: the text, and the total and date it prints, if any."""
    text = result.get("text", "")
    words = "The text reads: " + (text.replace("\n", " / ") if text else "(no text found)")
    total, day = printed_total(result.get("lines", [])), printed_date(text)
    facts = ([f"printed total {total:.2f}"] if total is not None else []) + ([f"printed date {day}"] if day else [])
    return words + (f"\n{result.get('source', 'It')}: " + ", ".join(facts) if facts else "")


def _facts_of(record: MatchedRecord, label: str) -> str:
    """What a record states about money and time, from its stored fields (metadata or printed)."""
    meta = record.metadata
    facts = []
    if meta.get("price") is not None:
        facts.append(f"price {meta['price']:.2f}")
    if meta.get("total") is not None:
        facts.append(f"printed total {meta['total']:.2f}")
    if meta.get("taken_at") or meta.get("date"):
        facts.append(f"dated {meta.get('taken_at') or meta.get('date')}")
    return f"{label}, {record.file_name}: " + (", ".join(facts) if facts else "no amount or date is stored for it")


class RuleBasedPlanner(BaseChatModel):
    """A chat model whose 'thinking' is :func:`plan`: deterministic, offline, labelled as such."""

    receipts_at: Callable[[str], int] | None = None  # see plan(); set by bind_tools from the aggregate tool

    @property
    def _llm_type(self) -> str:
        return "loupe-rule-based-planner"

    def bind_tools(self, tools: Any, **kwargs: Any) -> RuleBasedPlanner:
        """The plan names the tools itself; the aggregate tool also tells it how many receipts a shop has."""
        aggregate = next((t for t in tools if isinstance(t, BaseTool) and t.name == ToolName.AGGREGATE), None)
        return self.model_copy(update={"receipts_at": _receipt_counter(aggregate)}) if aggregate else self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        turn = read_turn(messages)
        steps = plan(turn, self.receipts_at)
        done = sum(1 for run in turn.runs if run.call_id.startswith(CALL_PREFIX))
        if done < len(steps):
            step = steps[done]
            call = {"name": step.tool.value, "args": step.args(turn), "id": f"{CALL_PREFIX}{uuid.uuid4().hex[:12]}"}
            message = AIMessage(content="", tool_calls=[call])
        else:
            message = AIMessage(content=explain(steps, turn))
        return ChatResult(generations=[ChatGeneration(message=message)])


def _receipt_counter(aggregate: BaseTool) -> Callable[[str], int]:
    """How many records the table's printed shop column matches for a name, by the aggregate tool's own count."""
    def receipts_at(shop: str) -> int:
        _, result = aggregate.func(measure="count", shop=shop)
        return (result.get("figure") or {}).get("value") or 0
    return receipts_at
