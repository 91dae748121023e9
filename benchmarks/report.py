"""What every benchmark does with its figures at the end: written as indented JSON, and said where."""
from __future__ import annotations

import json
from pathlib import Path


def write_json(path, report, **dumps) -> None:
    """``report`` as indented JSON at ``path`` (``dumps``: more json.dumps options), and a line saying so."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=1, **dumps) + "\n")
    print(f"wrote {path}")


def finish(report: dict, path) -> None:
    """The machine's 1-thread matmul rate (``report["fp32_gflops_1thread"]``) printed under the figures,
    and the report written to ``path`` when one is given."""
    print(f"(fp32 matmul {report['fp32_gflops_1thread']} GFLOP/s on 1 thread)")
    if path:
        write_json(path, report)
