"""What spikemax-bench shows and writes: progress, the terminal tables, results.json and the files derived from it.

* :mod:`~spikemax_bench.report.progress`: progress bars on a terminal, plain lines elsewhere (the run's monitor).
* :mod:`~spikemax_bench.report.tables`: the tables and verdicts shown on the terminal after a run.
* :mod:`~spikemax_bench.report.document`: results.json, and the files derived from it.
* :mod:`~spikemax_bench.report.csv_files`: results.csv.
* :mod:`~spikemax_bench.report.plots`: the four figures (matplotlib, drawn on the Agg canvas, no pyplot).

Files written to the output folder (see :meth:`spikemax_bench.store.RunStore.publish` for the order):

* ``results.json``: everything (schema in :mod:`~spikemax_bench.report.document`), enough to redraw every table
  and plot.
* ``results.csv``: one row per framework x loss, the mean and std of every summary measure over seeds.
* ``results.md``: :func:`spikemax_bench.render.results_markdown` of results.json.
* ``accuracy_vs_time.png``, ``spikes_per_sample.png``, ``training_curves.png``, ``early_exit.png``.
"""
