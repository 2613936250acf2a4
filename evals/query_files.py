"""Reading a query-set file: a JSON header line, then one JSON object per line.

The header's ``task`` (retrieval, ocr or agent; retrieval when absent) says
which runner scores it; see evals/querysets/build.py for each task's fields.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from loupe.base.errors import LoupeError


class EvalTask(StrEnum):
    """What a query set measures; evals/tasks.py has one runner for each."""

    RETRIEVAL = "retrieval"
    OCR = "ocr"
    AGENT = "agent"


def read_query_file(path: Path) -> tuple[dict, list[dict]]:
    """(header, entries); a line that is not a JSON object is an error naming the line."""
    if not path.is_file():
        raise LoupeError(f"query set {path} does not exist")
    numbered = [(n, line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                if line.strip()]
    if not numbered:
        raise LoupeError(f"query set {path} is empty")
    objects = []
    for number, line in numbered:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoupeError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(entry, dict):
            raise LoupeError(f"{path}:{number}: each line must be a JSON object")
        objects.append((number, entry))
    header = objects[0][1]
    task = header.get("task", EvalTask.RETRIEVAL.value)
    if task not in set(EvalTask):
        raise LoupeError(f"{path}:1: unknown task {task!r}: use one of {', '.join(EvalTask)}")
    if task != EvalTask.OCR and not isinstance(header.get("collection"), list):
        raise LoupeError(f"{path}:1: the first line must be {{\"collection\": [folders]}}")
    return {**header, "task": task}, [dict(entry, _line=number) for number, entry in objects[1:]]
