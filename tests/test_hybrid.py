"""The hybrid backend: the planner's tool calls, a writer model's words above the planner's explanation."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from loupe.agent.assistant import Assistant
from loupe.agent.hybrid import HybridModel
from tests.test_fast_pipeline import toolbox  # noqa: F401 - the fixture: a real table, fake models
from loupe.tools.toolbox import Toolbox

pytestmark = pytest.mark.fast


def test_the_planner_calls_and_the_writer_words_what_was_found(toolbox: Toolbox) -> None:  # noqa: F811
    seen: list[str] = []

    class Writer(GenericFakeChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            seen.append(messages[-1].text)
            return super()._generate(messages, stop, run_manager, **kwargs)

    writer = Writer(messages=iter([AIMessage(content="Your bookshop receipt is receipt.png, total 12.50. "
                                                     "Also see invented.jpg.")]))
    assistant = Assistant(toolbox.settings, model=HybridModel(writer=writer), toolbox=toolbox)
    answer = assistant.ask("how much was the corner bookshop receipt?", thread_id="hybrid")
    assistant.close()
    assert [step["tool"] for step in answer.trace] == ["text_search"]  # the planner's call
    assert answer.records[0].file_name == "receipt.png"
    assert answer.words.startswith("Your bookshop receipt is receipt.png, total 12.50.")
    assert "(rule-based planner)" in answer.words  # the explanation stays below the words
    assert answer.ungrounded == ["invented.jpg"] and "invented.jpg" not in answer.text
    assert len(seen) == 1 and "receipt.png" in seen[0] and "how much was the corner bookshop" in seen[0]


def test_bound_to_the_tools_its_planner_can_count_a_shops_receipts(toolbox: Toolbox) -> None:  # noqa: F811
    """Bound as the graph binds it, the hybrid's planner holds the aggregate tool's count, so "how much did I
    spend at X?" is planned as the rule-based backend plans it."""
    from loupe.agent.tools import make_tools

    bound = HybridModel(writer=GenericFakeChatModel(messages=iter([]))).bind_tools(make_tools(toolbox))
    assert bound.planner.receipts_at is not None
    assert bound.planner.receipts_at("corner bookshop") == 1 and bound.planner.receipts_at("nowhere at all") == 0
