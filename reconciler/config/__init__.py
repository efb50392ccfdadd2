"""Config stage: load a config repository, validate it, build the model.

Public surface: `load_config`, `check_config`, and the model types in `reconciler.config.model`.
"""

from reconciler.config.loader import check_config, load_config

__all__ = ["check_config", "load_config"]
