"""Put the committed loss-speed table into README.md and docs/results.md (between ``<!-- loss-speed -->`` and
``<!-- /loss-speed -->``).

    python benchmarks/loss_speed.py --out docs/results/loss_speed   # measure (writes results.json, results.md)
    python docs/render_speed.py [--check]                          # publish, or check what is published

The table is ``docs/results/loss_speed/results.md`` verbatim, never typed: ``--check`` exits 1 with a diff when
a page differs from it (a test runs the check).
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "loss_speed" / "results.md"
PAGES = [ROOT / "README.md", ROOT / "docs" / "results.md"]
BLOCK = re.compile(r"(<!-- loss-speed -->\n)(.*?)(<!-- /loss-speed -->)", re.DOTALL)


def rendered(page: Path, text: str, table: str) -> str:
    if not BLOCK.search(text):
        raise SystemExit(f"{page} has no <!-- loss-speed --> ... <!-- /loss-speed --> block")
    return BLOCK.sub(lambda match: match[1] + table + match[3], text, count=1)


def main(argv: list[str]) -> int:
    if argv not in ([], ["--check"]):
        raise SystemExit(f"usage: python docs/render_speed.py [--check], got {argv}")
    table = RESULTS.read_text(encoding="utf-8")
    stale = 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        new = rendered(page, text, table)
        if argv == ["--check"] and new != text:
            name = str(page.relative_to(ROOT))
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), name,
                                                       f"{name} as the committed loss-speed results render it"))
            stale += 1
        elif not argv:
            page.write_text(new, encoding="utf-8")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
