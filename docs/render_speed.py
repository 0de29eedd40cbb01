"""Put the committed speed tables into README.md and docs/results.md: the loss speed (between
``<!-- loss-speed -->`` and ``<!-- /loss-speed -->``) and the early-exit throughput (``<!-- early-exit-throughput
-->`` ... ``<!-- /early-exit-throughput -->``).

    python benchmarks/loss_speed.py --out docs/results/loss_speed                       # measure
    python benchmarks/early_exit_throughput.py --out docs/results/early_exit_throughput  # measure
    python docs/render_speed.py [--check]                                              # publish, or check

Each table is its ``results.md`` verbatim, never typed: ``--check`` exits 1 with a diff when a page differs from
it (a test runs the check).
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# page -> the blocks it shows
PAGES = {
    ROOT / "README.md": ("loss-speed", "early-exit-throughput"),
    ROOT / "docs" / "results.md": ("loss-speed", "early-exit-throughput"),
    ROOT / "docs" / "early_exit_at_scale.md": ("early-exit-throughput",),
}
TABLES = {  # block name -> committed table
    "loss-speed": ROOT / "docs" / "results" / "loss_speed" / "results.md",
    "early-exit-throughput": ROOT / "docs" / "results" / "early_exit_throughput" / "results.md",
}


def rendered(page: Path, text: str, name: str, table: str) -> str:
    block = re.compile(rf"(<!-- {name} -->\n)(.*?)(<!-- /{name} -->)", re.DOTALL)
    if not block.search(text):
        raise SystemExit(f"{page} has no <!-- {name} --> ... <!-- /{name} --> block")
    return block.sub(lambda match: match[1] + table + match[3], text, count=1)


def main(argv: list[str]) -> int:
    if argv not in ([], ["--check"]):
        raise SystemExit(f"usage: python docs/render_speed.py [--check], got {argv}")
    tables = {name: path.read_text(encoding="utf-8") for name, path in TABLES.items()}
    stale = 0
    for page, names in PAGES.items():
        text = page.read_text(encoding="utf-8")
        new = text
        for name in names:
            new = rendered(page, new, name, tables[name])
        if argv == ["--check"] and new != text:
            name = str(page.relative_to(ROOT))
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), name,
                                                       f"{name} as the committed speed results render it"))
            stale += 1
        elif not argv:
            page.write_text(new, encoding="utf-8")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
