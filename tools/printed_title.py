"""The dominant printed title or label of a picture, read from its OCR lines: the largest confident text.

A DVD cover, a book, a poster or a shop's receipt prints its name bigger than anything else on it, so the
title is the tallest line that OCR read with confidence and that has letters, together with the lines of
nearly its size stacked directly above or below it ("ACE VENTURA" over "PET DETECTIVE" printed as large).
A line OCR was unsure of is left out: stylised title lettering is where it reads garbage ("4BEASTPICTURE").
evals/printed_title_eval.py measures the rule against titles written down by hand (DVD covers) and SROIE's
company keys (receipts), and chose MIN_CONFIDENCE.
"""

from __future__ import annotations

from loupe.tools.document_fields import Box, line_bounds

MIN_CONFIDENCE = 0.8
MIN_LETTERS = 3
STACKED_SIZE = 0.85  # a line at least this fraction of the title's height, directly above or below, belongs to it
STACK_GAP = 0.5  # ... when the gap between them is at most this many of the title's heights
MAX_LINES = 3


def printed_title(lines: list[dict], min_confidence: float = MIN_CONFIDENCE) -> str | None:
    """The largest confidently read text with letters, with the lines stacked on it; None where there is none."""
    candidates = [(line_bounds(line["box"]), line["text"].strip()) for line in lines
                  if line.get("box") and sum(char.isalpha() for char in line.get("text", "")) >= MIN_LETTERS
                  and float(line.get("confidence", 1.0)) >= min_confidence]
    if not candidates:
        return None
    title_box, _ = max(candidates, key=lambda candidate: (candidate[0][3] - candidate[0][1], -candidate[0][1]))
    height = title_box[3] - title_box[1]
    block, grew = [title_box], True
    while grew and len(block) < MAX_LINES:  # a block of three lines is found a line at a time
        grew = False
        for bounds, _ in candidates:
            if bounds not in block and bounds[3] - bounds[1] >= STACKED_SIZE * height \
                    and _touches(bounds, block, height) and len(block) < MAX_LINES:
                block.append(bounds)
                grew = True
    return " ".join(text for bounds, text in sorted(candidates, key=lambda candidate: candidate[0][1])
                    if bounds in block)


def _touches(bounds: Box, block: list[Box], height: float) -> bool:
    """Directly above or below a line of the block, overlapping it sideways, with a small gap between."""
    left, top, right, bottom = bounds
    return any(left < other[2] and other[0] < right
               and min(abs(top - other[3]), abs(other[1] - bottom)) <= STACK_GAP * height for other in block)
