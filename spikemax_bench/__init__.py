"""spikemax-bench: the reproduction CLI (datasets, models, training runs and the report)."""
