"""acme/sentiment: a word-list sentiment scorer (local runtime example).

The model file is JSON: {"positive": [...], "negative": [...], "negations": [...]}.
"""

from __future__ import annotations

import json
import re
from typing import Any

_WORD = re.compile(r"[a-z']+")


def load(model_path: str) -> dict[str, Any]:
    """Called once when a warm replica starts: read the word lists."""
    with open(model_path, encoding="utf-8") as handle:
        model = json.load(handle)
    return {
        "positive": set(model["positive"]),
        "negative": set(model["negative"]),
        "negations": set(model.get("negations", [])),
        "version": model.get("version", "unknown"),
    }


def apply(input: Any, model: dict[str, Any]) -> dict[str, Any]:
    """Score a text (a string, or {"text": ...}) in [-1, 1]."""
    text = input.get("text", "") if isinstance(input, dict) else str(input)
    words = _WORD.findall(text.lower())
    score, negate = 0, False
    for word in words:
        if word in model["negations"]:
            negate = True
            continue
        value = (word in model["positive"]) - (word in model["negative"])
        score += -value if negate else value
        negate = False
    normalized = max(-1.0, min(1.0, score / max(1, len(words)) * 3))
    label = "positive" if normalized > 0.1 else "negative" if normalized < -0.1 else "neutral"
    return {"score": round(normalized, 3), "label": label, "model": model["version"]}
