"""``python -m spikemax_bench``: the same as the ``spikemax-bench`` command."""

from .cli import main

raise SystemExit(main())
