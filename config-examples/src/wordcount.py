"""erin/wordcount: counts words, skipping stop words (local runtime example).

The model file is plain text: one stop word per line.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def load(model_path: str) -> frozenset[str]:
    with open(model_path, encoding="utf-8") as handle:
        return frozenset(line.strip() for line in handle if line.strip())


def apply(input: Any, model: frozenset[str]) -> dict[str, Any]:
    """The most common words of a text (a string, or {"text": ...})."""
    text = input.get("text", "") if isinstance(input, dict) else str(input)
    words = [w.strip(".,;:!?\"'()").lower() for w in text.split()]
    counts = Counter(w for w in words if w and w not in model)
    return {"words": sum(counts.values()), "top": counts.most_common(5)}
