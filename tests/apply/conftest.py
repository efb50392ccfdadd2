from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from conftest_local import local_fixture  # noqa: E402,F401  (the `local` fixture)
