"""The ``hybrid`` backend: the rule-based planner picks the tools, the local LLM writes the answer's words.

The planner chooses tools better than a 0.5-1.5B model and in milliseconds; the model writes more
natural words. So every tool call comes from :func:`agent.planner.plan`, and when the tools have run the
model is given the request and the planner's explanation (which states what the tools found: the text
read, totals, dates, that nothing matched) and writes a short answer from it alone. The explanation
stays below the model's words, so no fact is lost when the model leaves one out, and the graph's
grounding check (agent/validation.py) takes out any record the words invent.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from loupe.agent.conversation import read_turn
from loupe.agent.planner import RuleBasedPlanner

WRITER_PROMPT = """You answer a person who searches their own photo collection. You are given their request
and what the search tools found. Answer in one to three plain sentences, using only what the tools found:
quote numbers, dates and names exactly as given, name only files that appear in it, and say so plainly when
nothing matched. Do not describe the tools."""


# What the writer reads and writes bounds the answer's time: on 2 cores the 1.5B model reads about 30 tokens a
# second and writes 10. The planner's explanation (below) already states every fact found, so of each tool
# result the writer gets the first records only, and it writes at most a few sentences.
MAX_RESULT_CHARS = 600  # of one tool result given to the writer (it was 1,500)
MAX_WORDS_TOKENS = 120  # of the writer's answer: three plain sentences


class HybridModel(BaseChatModel):
    """Planner calls, then the writer's words above the planner's explanation."""

    writer: BaseChatModel
    planner: RuleBasedPlanner = RuleBasedPlanner()

    @property
    def _llm_type(self) -> str:
        return "loupe-hybrid"

    def bind_tools(self, tools: Any, **kwargs: Any) -> HybridModel:
        """The planner names the tools itself (bound, it can count a shop's receipts); the writer gets none."""
        return self.model_copy(update={"planner": self.planner.bind_tools(tools)})

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        planned = self.planner.invoke(messages)
        if planned.tool_calls:
            return ChatResult(generations=[ChatGeneration(message=planned)])
        found = planned.content if isinstance(planned.content, str) else str(planned.content)
        start = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
        results = "\n".join(m.text[:MAX_RESULT_CHARS] for m in messages[start:] if isinstance(m, ToolMessage))
        request = read_turn(messages).request
        words = self.writer.invoke([SystemMessage(WRITER_PROMPT), HumanMessage(
            f"Request: {request}\n\nWhat the tools returned:\n{results}\n\nIn short:\n{found}")]).content
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=f"{words}\n\n{found}"))])
