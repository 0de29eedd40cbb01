"""Put the committed loss-speed table into README.md (between ``<!-- loss-speed -->`` and ``<!-- /loss-speed -->``).

    python benchmarks/loss_speed.py --out docs/results/loss_speed   # measure (writes results.json, results.md)
    python docs/render_speed.py [--check]                          # publish, or check what is published

The table is ``docs/results/loss_speed/results.md`` verbatim, never typed: ``--check`` exits 1 with a diff when
the README differs from it (a test runs the check).
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "loss_speed" / "results.md"
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- loss-speed -->\n)(.*?)(<!-- /loss-speed -->)", re.DOTALL)


def rendered(readme: str, table: str) -> str:
    if not BLOCK.search(readme):
        raise SystemExit(f"{README} has no <!-- loss-speed --> ... <!-- /loss-speed --> block")
    return BLOCK.sub(lambda match: match[1] + table + match[3], readme, count=1)


def main(argv: list[str]) -> int:
    readme = README.read_text(encoding="utf-8")
    new = rendered(readme, RESULTS.read_text(encoding="utf-8"))
    if argv == ["--check"]:
        if new != readme:
            sys.stdout.writelines(difflib.unified_diff(readme.splitlines(True), new.splitlines(True), "README.md",
                                                       "README.md as the committed loss-speed results render it"))
            return 1
        return 0
    if argv:
        raise SystemExit(f"usage: python docs/render_speed.py [--check], got {argv}")
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
