"""What every benchmark does with its figures at the end: written as indented JSON, and said where."""
from __future__ import annotations

import json
from pathlib import Path


def write_json(path, report, **dumps) -> None:
    """``report`` as indented JSON at ``path`` (``dumps``: more json.dumps options), and a line saying so."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=1, **dumps) + "\n")
    print(f"wrote {path}")
