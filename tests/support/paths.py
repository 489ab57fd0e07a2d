"""Where the repository's own files are, so that tests can run them and read the examples
wherever the test module itself sits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["EXAMPLES", "REPO", "example"]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def example(name: str) -> dict[str, Any]:
    """A workflow document from examples/, parsed."""
    return json.loads((EXAMPLES / name).read_text())
