"""A benchmark run of spikemax-bench: the sweep, training and test of every framework x loss, one code path for both.

A run is a list of *cells* (:mod:`spikemax_bench.cells`), each kept in a :class:`~spikemax_bench.store.CellStore`
as soon as it is finished (on disk under ``--out``, so that ``--resume`` can skip it): a training cell trains one
network (framework x loss x candidate x seed, :mod:`spikemax_bench.train`), an evaluation cell measures one
trained network with :func:`~spikemax_bench.evaluate.evaluate_trained` (the one place that measures a trained
network).

For every framework x loss:

1. **Sweep** (validation split only): every candidate of :func:`~spikemax_bench.sweep.sweep_grid` (the loss's
   hyper-parameter candidates x the learning rates; the same number of candidates, seeds and epochs for every
   loss) is trained with each of the sweep seeds ``0 .. sweep_seeds-1`` (default ``min(seeds, 2)``), each seed
   with its own validation split. A candidate's score is its validation accuracy pooled over those seeds
   (correct answers / samples). The choice is the *earliest* candidate whose score is within
   :data:`~spikemax_bench.sweep.SWEEP_TIE_MARGIN` of the best score; candidates are listed with the loss's usual
   default first. So a difference of a sample or two, which float rounding can produce between machines, never
   moves the choice away from the default (see :func:`~spikemax_bench.sweep.choose_candidate`). The test split
   is never looked at here.
2. **Test**: for every seed ``0 .. seeds-1`` the chosen candidate's network is evaluated (a sweep network is
   reused when the sweep trained that seed: it was trained exactly as a fresh run would be; other seeds train
   a fresh network). :func:`~spikemax_bench.evaluate.evaluate_trained` calibrates the early-exit rules on the
   seed's validation split and measures the full window and every rule in one streaming pass over the test split
   (:mod:`spikemax_bench.measures`).

Losses are built through the framework adapters, as a user of each framework would build them
(:func:`~spikemax_bench.sweep.make_loss`). Runs are reproducible and the losses paired: a network's initial
weights come from ``torch.manual_seed(seed)`` and its data order from a ``torch.Generator`` seeded with ``seed``,
the same for every loss.

Under ``torchrun`` (:mod:`spikemax_bench.distributed`) every process runs this same code: training is
``DistributedDataParallel`` over a seeded ``DistributedSampler``
(:func:`~spikemax_bench.loaders.training_loader`), each evaluation split is sharded and its metrics summed over
the processes, and the cells are rank 0's. With one process nothing of that happens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .cells import CellRunner, Monitor, SilentMonitor, planned_trainings, training_key
from .config import BenchConfig
from .data import SpikeDataset
from .loaders import training_loader
from .store import CellStore, MemoryStore
from .summary import summarise
from .sweep import Candidate, choose_candidate, describe_candidate, sweep_grid, sweep_summary

__all__ = ["run_benchmark"]


def run_benchmark(
    config: BenchConfig,
    dataset_for_seed: Callable[[int], SpikeDataset],
    *,
    store: CellStore | None = None,
    monitor: Monitor | None = None,
) -> list[dict[str, Any]]:
    """Sweep, train and test every framework x loss of ``config``, one cell at a time.

    Args:
        dataset_for_seed: the data set whose validation split belongs to a seed (seeds ``0 .. seeds-1``).
        store: where finished cells are kept and read back (default: in memory); cells already in it are not
            computed again.
        monitor: receives the plan, one progress task per training and one line per finished training.

    Returns one JSON-ready record per framework x loss x activity penalty (in that order, the penalties as
    ``config.activity_penalties`` lists them): ``framework``, ``loss``, ``activity_penalty`` (the weight λ of the
    activity regulariser it trained with), ``candidate`` (index of the
    chosen grid point), ``hyper_parameters`` and ``learning_rate`` (chosen), ``sweep`` (None without a sweep;
    else ``seeds``, ``tie_margin`` and per candidate its pooled and per-seed validation accuracy and whether it
    was ``chosen``), ``seeds`` (per seed: ``seed``, ``test`` measures, ``final_train_loss``,
    ``seconds_per_epoch``, ``curves``) and ``summary`` (mean and std over seeds). The sweep runs at the first
    activity penalty; the records of the others train its choice and have ``sweep`` None.
    """
    store = store if store is not None else MemoryStore()
    monitor = monitor or SilentMonitor()
    time_steps = dataset_for_seed(0).time_steps
    trainings, finished = planned_trainings(config, time_steps, store)
    batches_per_training = config.epochs * len(training_loader(dataset_for_seed(0).train, config.batch_size, seed=0))
    monitor.plan(trainings, trainings * batches_per_training, finished)
    runner = CellRunner(config, dataset_for_seed, store, monitor)
    return [
        record
        for framework in config.frameworks
        for loss_name in config.losses
        for record in _framework_loss_records(runner, framework, loss_name, time_steps)
    ]


def _framework_loss_records(
    runner: CellRunner, framework: str, loss_name: str, time_steps: int
) -> list[dict[str, Any]]:
    """The records of :func:`run_benchmark` of one framework x loss: the sweep (when the grid has a choice, at
    the first activity penalty), then the test of every seed at every activity penalty."""
    config = runner.config
    grid = sweep_grid(loss_name, time_steps, config.learning_rates, sweep=config.sweep)
    # One candidate (--no-sweep, --quick): nothing to choose, no sweep trainings.
    chosen, sweep = _sweep(runner, framework, loss_name, grid) if len(grid) > 1 else (0, None)
    records = []
    for position, penalty in enumerate(config.activity_penalties):
        seed_records = [
            _test_seed(runner, framework, loss_name, chosen, grid[chosen], seed, penalty)
            for seed in range(config.seeds)
        ]
        summary = summarise(seed_records)
        at_penalty = f" at λ={penalty:g}" if len(config.activity_penalties) > 1 else ""
        runner.monitor.note(f"{framework} {loss_name}{at_penalty}: test accuracy {summary['accuracy']['mean']:.3f}")
        records.append(
            {
                "framework": framework,
                "loss": loss_name,
                "activity_penalty": penalty,
                "candidate": chosen,
                "hyper_parameters": grid[chosen].hyper_parameters,
                "learning_rate": grid[chosen].learning_rate,
                "sweep": sweep if position == 0 else None,
                "seeds": seed_records,
                "summary": summary,
            }
        )
    return records


def _sweep(runner: CellRunner, framework: str, loss_name: str, grid: list[Candidate]) -> tuple[int, dict[str, Any]]:
    """Train every candidate with every sweep seed and choose one: (chosen index, the record's ``sweep`` entry).

    The weights of the candidates not chosen are dropped: only the chosen one's are evaluated.
    """
    config = runner.config
    penalty = config.activity_penalties[0]
    trainings_by_seed = [
        [runner.train(framework, loss_name, index, candidate, seed, penalty) for index, candidate in enumerate(grid)]
        for seed in range(config.sweep_seeds)
    ]
    pooled = {
        count: [sum(cells[index][count] for cells in trainings_by_seed) for index in range(len(grid))]
        for count in ("validation_correct", "validation_samples")
    }
    chosen = choose_candidate(pooled["validation_correct"], pooled["validation_samples"])
    sweep = sweep_summary(grid, trainings_by_seed, chosen, config.sweep_seeds)
    for seed in range(min(config.sweep_seeds, config.seeds)):
        for index in range(len(grid)):
            if index != chosen:
                runner.store.drop_weights(training_key(framework, loss_name, index, seed, penalty))
    runner.monitor.note(
        f"{framework} {loss_name} chose {describe_candidate(grid[chosen], config.learning_rates)} "
        f"(pooled validation accuracy {sweep['candidates'][chosen]['validation_accuracy']:.3f} over "
        f"{config.sweep_seeds} seed(s))"
    )
    return chosen, sweep


def _test_seed(
    runner: CellRunner,
    framework: str,
    loss_name: str,
    chosen: int,
    candidate: Candidate,
    seed: int,
    activity_penalty: float,
) -> dict[str, Any]:
    """The chosen candidate's network of ``seed`` at ``activity_penalty`` (the sweep's, or trained now), measured
    on the test split."""
    training = runner.train(framework, loss_name, chosen, candidate, seed, activity_penalty)
    evaluation = runner.evaluate(framework, loss_name, chosen, seed, activity_penalty)
    return {
        "seed": seed,
        **{key: value for key, value in evaluation.items() if key != "candidate"},
        "final_train_loss": training["final_train_loss"],
        "seconds_per_epoch": training["seconds_per_epoch"],
        "curves": training["curves"],
    }
