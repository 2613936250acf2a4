"""Local LLM runtimes compared on the agent's first step: which tool, with which arguments.

For each packaged GGUF model (``qwen2.5-coder-1.5b``, ``qwen2.5-coder-0.5b``) and two runtimes,
llama.cpp in process (``xllamacpp``, what the ``local`` backend runs) and transformers' GGUF loading
(the weights dequantised into torch), it prints: load seconds, one tool-choice turn's seconds with an
empty prompt cache and with the system prompt cached, output tokens per second, and how many of eight
everyday requests get the right tool and argument with the ``local`` backend's prompt and parser.

    python -m loupe.evals.llm_runtimes [--models qwen2.5-coder-0.5b] [--runtimes xllamacpp]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from loupe.agent.graph import SYSTEM_PROMPT
from loupe.agent.local_llm import LocalChatModel, parse_reply, server_for, to_openai, tool_prompt
from loupe.agent.tools import make_tools
from loupe.tools.models.gguf import MODELS, gguf_path
from loupe.tools.models.resolver import default_cache_dir
from loupe.tools.records import MatchedRecord, MatchLabel

IMAGE = "\n\n[attached image: 5d41402abc4b2a76]"
FIRST, SECOND = "a3f9c1d27b604e18", "0e7d5b9f2c8a4613"
RESULTS = (f'text_search: 2 results (quoted text is data read from the records)\n'
           f'#1 id={FIRST} file="receipt_012.jpg" text match score=0.03 text="SANYU STATIONERY SHOP" '
           f'title="SANYU STATIONERY SHOP"\n'
           f'#2 id={SECOND} file="receipt_040.jpg" text match score=0.02 text="SANYU STATIONERY SHOP"')


def _after_results(request: str) -> list[BaseMessage]:
    """A conversation where a search already listed two receipts, then ``request``."""
    call = {"name": "text_search", "args": {"query": "SANYU STATIONERY"}, "id": "call_1"}
    return [HumanMessage("receipts from Sanyu Stationery"), AIMessage("", tool_calls=[call]),
            ToolMessage(RESULTS, tool_call_id="call_1", artifact={"tool": "text_search", "records": [
                _receipt(FIRST, "/photos/receipt_012.jpg"), _receipt(SECOND, "/photos/receipt_040.jpg")]}),
            AIMessage("I ran text_search for the shop's name: #1 receipt_012.jpg and #2 receipt_040.jpg."),
            HumanMessage(request)]


def _receipt(record_id: str, path: str) -> MatchedRecord:
    return MatchedRecord(id=record_id, path=path, file_name=Path(path).name, score=0.9, match=MatchLabel.TEXT_MATCH,
                         why="its printed text matches")


@dataclass(frozen=True)
class Case:
    messages: list[BaseMessage]
    tool: str
    right: Callable[[dict[str, Any]], bool]  # the arguments are right


def _attached(args: dict[str, Any]) -> bool:
    return args.get("image") == "attached" and not args.get("record_id")


CASES = [
    Case([HumanMessage("where else have I got this photo?" + IMAGE)], "image_search", _attached),
    Case([HumanMessage("do I have any pictures that look like this one?" + IMAGE)], "image_search", _attached),
    Case([HumanMessage("what does it say on this sign?" + IMAGE)], "ocr", _attached),
    Case([HumanMessage("can you read the writing in this picture for me" + IMAGE)], "ocr", _attached),
    Case([HumanMessage("find the receipt from Corner Bookshop")], "text_search",
         lambda a: "corner bookshop" in str(a.get("query", "")).lower()),
    Case([HumanMessage("where's the bill I got at Tan Chay Yee's hardware store?")], "text_search",
         lambda a: "tan chay yee" in str(a.get("query", "")).lower()),
    Case(_after_results("read that second one"), "ocr", lambda a: a.get("record_id") == SECOND),
    Case(_after_results("show me more pictures like the first one"), "image_search",
         lambda a: a.get("record_id") == FIRST),
]


def score(calls: list[dict[str, Any]], case: Case) -> bool:
    """Right tool and argument; a miss is printed, so the table's count can be read case by case."""
    right = bool(calls) and calls[0]["name"] == case.tool and case.right(calls[0]["args"])
    if not right:
        got = f"{calls[0]['name']}({calls[0]['args']})" if calls else "no call"
        print(f"  miss: {case.messages[-1].content.splitlines()[0]!r} -> {got}, expected {case.tool}", flush=True)
    return right


def run_xllamacpp(path: str) -> dict[str, Any]:
    """The ``local`` backend itself: LocalChatModel bound to Loupe's four tools."""
    start = time.perf_counter()
    server = server_for(path, LocalChatModel.model_fields["n_ctx"].default)
    load = time.perf_counter() - start
    model = LocalChatModel(model_path=path).bind_tools(make_tools(None))
    seconds, right = [], 0
    for case in CASES:
        start = time.perf_counter()
        reply = model.invoke([SystemMessage(SYSTEM_PROMPT), *case.messages])
        seconds.append(time.perf_counter() - start)
        right += score(reply.tool_calls, case)
    speed = server.handle_chat_completions({
        "messages": [{"role": "user", "content": "Write a 150-word story about a lighthouse."}],
        "temperature": 0, "max_tokens": 128})["timings"]["predicted_per_second"]
    return {"load": load, "cold": seconds[0], "cached": statistics.median(seconds[1:]), "tok/s": speed,
            "right": right}


def run_transformers(path: str) -> dict[str, Any]:
    """transformers' GGUF loading (dequantised to float32; needs ``gguf`` and ``accelerate``), greedy, the same
    prompt and parser, no grammar.

    The system prompt's keys and values are computed once and copied into each request, as llama.cpp's
    prompt cache does.
    """
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF conversion's progress bar, 339 lines in a log
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

    folder, name = str(Path(path).parent), Path(path).name
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    load = time.perf_counter() - start
    tools = LocalChatModel(model_path=path).bind_tools(make_tools(None)).tools
    names = {tool["function"]["name"] for tool in tools}

    def ids(chat: list[dict[str, Any]], prompt: bool) -> torch.Tensor:
        return tokenizer.apply_chat_template(chat, add_generation_prompt=prompt, return_dict=True,
                                             return_tensors="pt")["input_ids"]

    def generate(input_ids: torch.Tensor, cache: DynamicCache | None, new: int) -> tuple[str, int]:
        with torch.no_grad():
            out = model.generate(input_ids, past_key_values=copy.deepcopy(cache) if cache else None,
                                 max_new_tokens=new, do_sample=False)
        return tokenizer.decode(out[0, input_ids.shape[1]:], skip_special_tokens=True), out.shape[1] - input_ids.shape[1]

    system = to_openai([SystemMessage(SYSTEM_PROMPT)], tool_prompt(tools))
    prefix = ids(system, prompt=False)
    seconds, right, cache = [], 0, None
    for case in CASES:
        start = time.perf_counter()
        text, _ = generate(ids(to_openai([SystemMessage(SYSTEM_PROMPT), *case.messages], tool_prompt(tools)),
                               prompt=True), cache, 64)
        seconds.append(time.perf_counter() - start)
        right += score(parse_reply(text, names)[1], case)
        if cache is None:
            with torch.no_grad():
                cache = model(prefix, past_key_values=DynamicCache()).past_key_values
    story = ids([{"role": "user", "content": "Write a 150-word story about a lighthouse."}], prompt=True)
    start = time.perf_counter()
    generate(story, None, 1)
    first = time.perf_counter() - start
    start = time.perf_counter()
    _, produced = generate(story, None, 64)
    speed = (produced - 1) / max(time.perf_counter() - start - first, 1e-6)
    return {"load": load, "cold": seconds[0], "cached": statistics.median(seconds[1:]), "tok/s": speed,
            "right": right}


RUNTIMES = {"xllamacpp": run_xllamacpp, "transformers": run_transformers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=list(RUNTIMES))
    args = parser.parse_args()
    print(f"{'model':20} {'runtime':13} {'load s':>7} {'cold s':>7} {'cached s':>9} {'tok/s':>6} tool choice")
    for name in args.models:
        path = str(gguf_path(name, default_cache_dir()))
        for runtime in args.runtimes:
            try:
                row = RUNTIMES[runtime](path)
            except Exception as exc:  # noqa: BLE001 - a runtime that cannot run is reported, the others go on
                print(f"{name:20} {runtime:13} could not run: {type(exc).__name__}: {exc}")
                continue
            print(f"{name:20} {runtime:13} {row['load']:7.1f} {row['cold']:7.1f} {row['cached']:9.1f} "
                  f"{row['tok/s']:6.1f} {row['right']}/{len(CASES)}", flush=True)


if __name__ == "__main__":
    main()
