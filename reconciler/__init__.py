"""reconciler: a declarative GitOps reconciler for a model-serving platform."""

__version__ = "0.2.0"
