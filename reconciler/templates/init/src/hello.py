"""acme/hello: the local runtime imports this module from src/ (entrypoint hello:apply)."""

import json


def load(model_path):
    """Called once per warm replica, with the verified model file."""
    with open(model_path, encoding="utf-8") as handle:
        return json.load(handle)


def apply(input, model):
    """Called for every invocation with the caller's JSON input."""
    name = input.get("name", "world") if isinstance(input, dict) else str(input)
    return {"message": f"{model['greeting']}, {name}!"}
