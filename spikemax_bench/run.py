"""Training, evaluation and the hyper-parameter sweep of spikemax-bench, one code path for both frameworks.

A run is a list of *cells*, each kept in a :class:`~spikemax_bench.store.CellStore` as soon as it is
finished (on disk under ``--out``, so that ``--resume`` can skip it):

* a **training cell** trains one network: framework x loss x candidate (hyper-parameters and learning rate)
  x seed. It stores the training curves and the final validation accuracy, and the network's weights while the
  network may still have to be evaluated.
* an **evaluation cell** measures one trained network with :func:`evaluate_trained` (the one place that
  measures a trained network) and stores what it returns.

For every framework x loss:

1. **Sweep** (validation split only): every candidate of :func:`sweep_grid` (the loss's hyper-parameter
   candidates x the learning rates; the same number of candidates, seeds and epochs for every loss) is trained
   with each of the sweep seeds ``0 .. sweep_seeds-1`` (default ``min(seeds, 2)``), each seed with its own
   validation split. A candidate's
   score is its validation accuracy pooled over those seeds (correct answers / samples). The choice is the
   *earliest* candidate whose score is within :data:`SWEEP_TIE_MARGIN` of the best score; candidates are listed
   with the loss's usual default first. So a difference of a sample or two, which float rounding can produce
   between machines, never moves the choice away from the default (see :func:`choose_candidate`). The test
   split is never looked at here.
2. **Test**: for every seed ``0 .. seeds-1`` the chosen candidate's network is evaluated (a sweep network is
   reused when the sweep trained that seed: it was trained exactly as a fresh run would be; other seeds train
   a fresh network). :func:`evaluate_trained` calibrates the early-exit rules on the seed's validation split
   and measures the full window and every rule in one streaming pass over the test split
   (:mod:`spikemax_bench.measures`).

Losses are built through the framework adapters, as a user of each framework would build them
(:func:`make_loss`). Runs are reproducible and the losses paired: a network's initial weights come from
``torch.manual_seed(seed)`` and its data order from a ``torch.Generator`` seeded with ``seed``, the same for
every loss.

Under ``torchrun`` (:mod:`spikemax_bench.distributed`) every process runs this same code: training is
``DistributedDataParallel`` over a seeded ``DistributedSampler`` (:func:`training_loader`), each evaluation
split is sharded and its metrics summed over the processes, and the cells are rank 0's. With one process
nothing of that happens.
"""

from __future__ import annotations

import inspect
import math
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from spikemax_plugins import early_exit

from . import distributed
from .data import ProgressTask, SpikeDataset, collate_time_first, silent_progress
from .measures import EARLY_EXIT_METRICS, Evaluation, StreamingMeasures, calibrate_rules
from .models import FRAMEWORKS, SpikingNetwork, build_network
from .store import CellStore, MemoryStore

__all__ = [
    "LOSS_NAMES",
    "SUMMARY_METRICS",
    "SWEEP_TIE_MARGIN",
    "BenchConfig",
    "Candidate",
    "Evaluation",
    "Monitor",
    "choose_candidate",
    "evaluate",
    "evaluate_trained",
    "record_output",
    "summarise_early_exit",
    "training_loader",
    "loss_candidates",
    "make_loss",
    "planned_trainings",
    "run_benchmark",
    "summarise",
    "sweep_grid",
    "train_network",
]

LOSS_NAMES = ("spikemax_g", "spikemax_s", "ce_count", "mse_count")
LossFunction = Callable[[Tensor, Tensor], Tensor]
HyperParameters = dict[str, float | int]

# Candidates whose pooled validation accuracy is within this of the best count as tied, and the earliest wins.
# One percentage point: about 3 of digits-dvs' 287 validation samples per seed, well below the sampling error of
# such an accuracy (sqrt(0.9 * 0.1 / 287) = 0.018), so it only ever breaks differences the data cannot resolve.
SWEEP_TIE_MARGIN = 0.01

# Per-seed test measures that get a mean and a standard deviation in the summary.
SUMMARY_METRICS = (
    "accuracy",
    "steps_to_decision",
    "time_to_decision_fraction",
    "no_decision_fraction",
    "output_spikes_per_sample",
    "hidden_spikes_per_sample",
    "network_spikes_per_sample",
    "hidden_synaptic_operations_per_sample",
    "input_spikes_per_sample",
    "input_synaptic_operations_per_sample",
    "synaptic_operations_per_sample",
    "seconds_per_epoch",
    "final_train_loss",
)


@dataclass(frozen=True)
class BenchConfig:
    """Everything that decides the numbers of a benchmark run (recorded in results.json).

    ``learning_rates``: the Adam learning rates of the sweep grid, the first being the default (without a sweep
    only the first is used). ``sweep_seeds``: how many seeds (``0 ..``) the sweep pools each candidate's
    validation accuracy over; None means ``min(seeds, 2)`` (resolved when the config is built).
    """

    dataset: str = "digits-dvs"
    frameworks: tuple[str, ...] = FRAMEWORKS
    losses: tuple[str, ...] = LOSS_NAMES
    epochs: int = 8
    time_steps: int | None = None  # None: the data set's default
    seeds: int = 1
    device: str = "cpu"
    batch_size: int = 64
    # 2e-3 (the bench's earlier single rate) first, so it stays unless 1e-2 wins clearly. One sweep of both frameworks
    # at 2e-3, 5e-3 and 1e-2 (8 epochs, seed 0) scored every loss 1 to 3 points higher at the larger rates and changed
    # which loss led, so the learning rate is part of every loss's grid rather than fixed.
    learning_rates: tuple[float, ...] = (2e-3, 1e-2)
    hidden_size: int = 128
    architecture: str = "mlp"
    sweep: bool = True
    sweep_seeds: int | None = None
    quick: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "seeds", "batch_size", "hidden_size", "sweep_seeds"):
            if name == "sweep_seeds" and self.sweep_seeds is None:
                # Two seeds at most by default: the sweep is the costly part of a run (candidates x seeds).
                object.__setattr__(self, "sweep_seeds", min(self.seeds, 2))
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        unknown = [name for name in self.losses if name not in LOSS_NAMES]
        if unknown or not self.losses:
            raise ValueError(f"losses must be a non-empty subset of {LOSS_NAMES}, got {self.losses}")
        unknown = [name for name in self.frameworks if name not in FRAMEWORKS]
        if unknown or not self.frameworks:
            raise ValueError(f"frameworks must be a non-empty subset of {FRAMEWORKS}, got {self.frameworks}")
        if not self.learning_rates or not all(
            isinstance(rate, float) and math.isfinite(rate) and rate > 0 for rate in self.learning_rates
        ):
            raise ValueError(
                f"learning_rates must be a non-empty tuple of finite floats > 0, got {self.learning_rates}"
            )
        if len(set(self.learning_rates)) != len(self.learning_rates):
            raise ValueError(f"learning_rates must not repeat a value, got {self.learning_rates}")


# ------------------------------------------------------------------------------------------------- losses


def loss_candidates(loss_name: str, time_steps: int) -> list[HyperParameters]:
    """Hyper-parameter candidates of ``loss_name`` for the validation sweep: three per loss, default first.

    * ``spikemax_g``: ``smoothing`` (added to every count) 1 (the adapters' default, like the authors' floor
      of 1), 0.25, 4.
    * ``spikemax_s``: ``window`` T/2, T/4, 3T/4 steps (T = ``time_steps``).
    * ``ce_count``: ``temperature`` 1 (snnTorch's ``ce_count_loss``), 2, 4.
    * ``mse_count``: ``(true_rate, false_rate)`` (0.8, 0.2) (snnTorch's tutorials), (0.5, 0.1), (0.2, 0.03)
      (lava-dl's NMNIST tutorial).
    """
    if loss_name == "spikemax_g":
        return [{"smoothing": value} for value in (1.0, 0.25, 4.0)]
    if loss_name == "spikemax_s":
        return [{"window": max(1, round(time_steps * fraction))} for fraction in (0.5, 0.25, 0.75)]
    if loss_name == "ce_count":
        return [{"temperature": value} for value in (1.0, 2.0, 4.0)]
    if loss_name == "mse_count":
        return [
            {"true_rate": true_rate, "false_rate": false_rate}
            for true_rate, false_rate in ((0.8, 0.2), (0.5, 0.1), (0.2, 0.03))
        ]
    raise ValueError(f"loss must be one of {LOSS_NAMES}, got {loss_name!r}")


@dataclass(frozen=True)
class Candidate:
    """One point of a loss's sweep grid: its hyper-parameters and the Adam learning rate."""

    hyper_parameters: HyperParameters
    learning_rate: float


def sweep_grid(
    loss_name: str, time_steps: int, learning_rates: tuple[float, ...], *, sweep: bool = True
) -> list[Candidate]:
    """The candidates a loss is tuned over, in preference order (the tie rule keeps the earliest).

    Every hyper-parameter candidate of :func:`loss_candidates` at the first (default) learning rate, then all of
    them at the second, and so on: a learning rate other than the default has to win clearly. With
    ``sweep=False`` only the first candidate (the loss's default at the first learning rate).
    """
    grid = [
        Candidate(hyper_parameters, learning_rate)
        for learning_rate in learning_rates
        for hyper_parameters in loss_candidates(loss_name, time_steps)
    ]
    return grid if sweep else grid[:1]


def make_loss(framework: str, loss_name: str, hyper_parameters: HyperParameters) -> LossFunction:
    """The loss as a user of ``framework`` builds it: through ``snntorch.functional`` or ``norse.torch``.

    ``ce_count`` is SpikeMax-G in softmax mode (snnTorch's ``ce_count_loss`` with a temperature). For
    ``mse_count`` snnTorch users get snnTorch's own ``SF.mse_count_loss`` (target counts truncated to
    ``int(rate * T)``), the baseline they already train with; Norse has no loss of its own, so Norse users get
    ``norse.torch.MSECountLoss`` from the adapter (target counts ``rate * T``, not truncated).

    Returns a callable ``(spikes [T, B, C], targets [B]) -> scalar loss``.
    """
    if loss_name not in LOSS_NAMES:
        raise ValueError(f"loss must be one of {LOSS_NAMES}, got {loss_name!r}")
    options: dict[str, Any] = {"mode": "softmax"} if loss_name == "ce_count" else {}
    if framework == "snntorch":
        import snntorch.functional as snntorch_functional
        import spikemax_snntorch  # noqa: F401  (registers SF.spikemax_g_loss and SF.spikemax_s_loss)

        if loss_name == "mse_count":
            return snntorch_functional.mse_count_loss(
                correct_rate=hyper_parameters["true_rate"], incorrect_rate=hyper_parameters["false_rate"]
            )
        constructor = (
            snntorch_functional.spikemax_s_loss if loss_name == "spikemax_s" else snntorch_functional.spikemax_g_loss
        )
    elif framework == "norse":
        import norse.torch
        import spikemax_norse  # noqa: F401  (registers norse.torch.SpikeMaxGLoss, SpikeMaxSLoss, MSECountLoss)

        constructor = {
            "spikemax_g": norse.torch.SpikeMaxGLoss,
            "spikemax_s": norse.torch.SpikeMaxSLoss,
            "ce_count": norse.torch.SpikeMaxGLoss,
            "mse_count": norse.torch.MSECountLoss,
        }[loss_name]
    else:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    return constructor(**options, **hyper_parameters)


def describe_hyper_parameters(hyper_parameters: HyperParameters) -> str:
    """``{"true_rate": 0.8, "false_rate": 0.2}`` -> ``"true_rate=0.8 false_rate=0.2"``."""
    return " ".join(f"{name}={value:g}" for name, value in hyper_parameters.items())


def describe_candidate(candidate: Candidate, learning_rates: tuple[float, ...]) -> str:
    """The candidate's hyper-parameters, and its learning rate when the grid has more than one."""
    text = describe_hyper_parameters(candidate.hyper_parameters)
    return text if len(learning_rates) == 1 else f"{text} lr={candidate.learning_rate:g}"


# ------------------------------------------------------------------------------------- training, evaluation


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int) -> DataLoader:
    """Time-first batches ``([T, B, ...], [B])``; the order of a shuffled loader depends on ``seed`` only."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate_time_first
    )


@torch.no_grad()
def _measure(
    network: SpikingNetwork,
    loader: DataLoader,
    device: torch.device,
    *,
    num_steps: int | None = None,
    rules: Sequence[early_exit.ExitRule] = (),
) -> StreamingMeasures:
    """One pass of ``network`` over ``loader``, each batch fed to a :class:`StreamingMeasures` (then dropped).

    ``num_steps`` (T) is read from the first batch when None; a process whose loader may be empty (a shard of a
    tiny split) must give it. Returns the measures, to be read on every process.
    """
    network.eval()
    measures = None
    if num_steps is not None:
        measures = StreamingMeasures(
            network.fan_out, num_steps=num_steps, num_classes=network.layer_sizes[-1], device=device, rules=rules
        )
    for frames, labels in loader:
        spikes = network(frames.to(device))
        if measures is None:
            measures = StreamingMeasures(
                network.fan_out,
                num_steps=spikes.output.shape[0],
                num_classes=network.layer_sizes[-1],
                device=device,
                rules=rules,
            )
        measures.update(spikes, labels)
    if measures is None:
        raise ValueError("loader must yield at least one batch to evaluate, or num_steps must be given; got no batch")
    return measures


def evaluate(
    network: SpikingNetwork, loader: DataLoader, device: torch.device, *, num_steps: int | None = None
) -> Evaluation:
    """Run ``network`` over ``loader``; returns its :class:`Evaluation` (accuracy, latency, activity).

    Streams: each batch updates the metrics' sums and is dropped, so memory does not grow with the split. In a
    multi-process run every process passes its shard of the split (:func:`~spikemax_bench.distributed.shard`)
    and gets the evaluation of the whole split. ``num_steps``: T, read from the first batch when None.
    """
    return _measure(network, loader, device, num_steps=num_steps).evaluation()


@torch.no_grad()
def record_output(
    network: SpikingNetwork, split: Dataset, *, batch_size: int, device: torch.device, num_steps: int
) -> tuple[Tensor, Tensor]:
    """The output spikes ``[T, N, C]`` and labels ``[N]`` of ``network`` on the N samples of ``split``, in order.

    Kept whole (for calibration, on the validation split). In a multi-process run each process runs its shard
    and every process gets the whole split's spikes, in the split's order.
    """
    network.eval()
    outputs: list[Tensor] = []
    labels: list[Tensor] = []
    for frames, batch_labels in make_loader(distributed.shard(split), batch_size, shuffle=False, seed=0):
        outputs.append(network(frames.to(device)).output)
        labels.append(batch_labels.to(device))
    num_classes = network.layer_sizes[-1]
    output = torch.cat(outputs, dim=1) if outputs else torch.zeros(num_steps, 0, num_classes, device=device)
    target = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64, device=device)
    total = len(split)  # type: ignore[arg-type]
    return distributed.gather_shards(output, total, dim=1), distributed.gather_shards(target, total, dim=0)


def evaluate_trained(
    network: SpikingNetwork, dataset: SpikeDataset, *, batch_size: int, device: torch.device
) -> dict[str, Any]:
    """Everything measured on one trained network: the record its evaluation cell stores.

    The single place where a trained network is measured:

    1. its output spikes on the **validation** split calibrate the early-exit rules of
       :data:`~spikemax_bench.measures.EARLY_EXIT_RULES` (the test split is never used for that);
    2. one pass over the **test** split measures the full window and applies every rule
       (:class:`~spikemax_bench.measures.StreamingMeasures`).

    Returns ``{"test": asdict(Evaluation), "early_exit": {"calibration": {"split": "validation", "samples": n},
    "rules": [...]}}``, one rule entry per :data:`EARLY_EXIT_RULES` entry: ``method``, ``alpha``, ``rule``
    (:meth:`ExitRule.to_dict`, None when it could not be calibrated), ``error`` (why not, else None) and every
    :data:`~spikemax_bench.measures.EARLY_EXIT_METRICS` measure (None without a rule). The summary and
    the verdicts read ``record["test"][metric]``.
    """
    output, labels = record_output(
        network, dataset.validation, batch_size=batch_size, device=device, num_steps=dataset.time_steps
    )
    calibrated = calibrate_rules(output, labels)
    del output, labels
    test_loader = make_loader(distributed.shard(dataset.test), batch_size, shuffle=False, seed=0)
    rules = [entry.rule for entry in calibrated if entry.rule is not None]
    measures = _measure(network, test_loader, device, num_steps=dataset.time_steps, rules=rules)
    evaluation = measures.evaluation()
    exits = iter(measures.early_exit())
    entries = [
        {
            "method": entry.method,
            "alpha": entry.alpha,
            "rule": None if entry.rule is None else entry.rule.to_dict(),
            "error": entry.error,
            **(next(exits) if entry.rule is not None else dict.fromkeys(EARLY_EXIT_METRICS)),
        }
        for entry in calibrated
    ]
    return {
        "test": asdict(evaluation),
        "early_exit": {"calibration": {"split": "validation", "samples": len(dataset.validation)}, "rules": entries},
    }


@torch.no_grad()
def _validation_counts(network: SpikingNetwork, loader: DataLoader, device: torch.device) -> tuple[int, int]:
    """(correct predictions, samples) of ``network`` over ``loader``, summed over the processes of a multi-process
    run (each passing its shard); ties count wrong."""
    from spikemax_plugins.streaming import SpikeAccuracy

    network.eval()
    metric = SpikeAccuracy(network.layer_sizes[-1]).to(device)
    for frames, labels in loader:
        metric.update(network(frames.to(device)).output, labels.to(device))
    with metric.sync_context():
        return int(metric.correct), int(metric.samples)


@dataclass
class TrainingCurves:
    """Per epoch: mean training loss, validation accuracy after the epoch, seconds spent training."""

    train_loss: list[float] = field(default_factory=list)
    validation_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)


def train_network(
    network: SpikingNetwork,
    loss_function: LossFunction,
    train_loader: DataLoader,
    validation_loader: DataLoader,
    *,
    epochs: int,
    learning_rate: float,
    device: torch.device,
    task: ProgressTask,
) -> tuple[TrainingCurves, tuple[int, int]]:
    """Adam on the mean batch loss, full backpropagation through time; the validation set scored per epoch.

    In a multi-process run (:mod:`~spikemax_bench.distributed`) the network trains as a
    ``DistributedDataParallel`` module (gradients averaged over the processes, every process keeping the same
    weights), ``train_loader`` is this process's :func:`training_loader` and ``validation_loader`` its shard; the
    training loss and the validation counts are summed over the processes.

    ``task`` is advanced once per training batch. Returns the curves and the final epoch's validation
    ``(correct, samples)``.
    """
    model = _parallel(network, device)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    curves = TrainingCurves()
    counts = (0, 0)
    for epoch in range(epochs):
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)  # a new order every epoch, the same on every run
        network.train()
        started = time.perf_counter()
        loss_sum = 0.0
        samples = 0
        for frames, labels in train_loader:
            frames, labels = frames.to(device), labels.to(device)
            loss = loss_function(model(frames).output, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(labels)
            samples += len(labels)
            task.advance()
        curves.epoch_seconds.append(time.perf_counter() - started)
        if distributed.is_distributed():
            loss_sum, samples = distributed.sum_over_ranks([loss_sum, samples])
        curves.train_loss.append(loss_sum / samples)
        counts = _validation_counts(network, validation_loader, device)
        curves.validation_accuracy.append(counts[0] / counts[1])
    return curves, counts


def _parallel(network: SpikingNetwork, device: torch.device) -> nn.Module:
    """``network`` itself for one process; a ``DistributedDataParallel`` wrapper of it in a multi-process run."""
    if not distributed.is_distributed():
        return network
    from torch.nn.parallel import DistributedDataParallel

    # No buffer sync before each forward pass: the buffers are snnTorch's membrane states, reset by every forward
    # pass, and their batch size may differ between processes on the last batch. (Synced once at construction,
    # where every process holds the same fresh network.)
    options = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        else {"broadcast_buffers": False}  # torch < 2.13
    )
    device_ids = None
    if device.type == "cuda":
        device_ids = [torch.cuda.current_device() if device.index is None else device.index]
    return DistributedDataParallel(network, device_ids=device_ids, **options)


def training_loader(dataset: Dataset, batch_size: int, *, seed: int) -> DataLoader:
    """The shuffled training batches of this process.

    One process: :func:`make_loader` (order from a generator seeded with ``seed``). N processes: each takes its
    part of a ``DistributedSampler`` seeded with ``seed`` (reshuffled per epoch by :func:`train_network`, padded
    with repeated samples so that every process runs the same number of batches), in batches of
    ``ceil(batch_size / N)``, so that one optimiser step still sees about ``batch_size`` samples.
    """
    processes = distributed.world_size()
    if processes == 1:
        return make_loader(dataset, batch_size, shuffle=True, seed=seed)
    sampler = DistributedSampler(dataset, num_replicas=processes, rank=distributed.rank(), shuffle=True, seed=seed)
    return DataLoader(
        dataset, batch_size=math.ceil(batch_size / processes), sampler=sampler, collate_fn=collate_time_first
    )


# ------------------------------------------------------------------------------------------- the sweep


def choose_candidate(correct: list[int], samples: list[int], *, margin: float = SWEEP_TIE_MARGIN) -> int:
    """Index of the chosen candidate: the earliest whose pooled accuracy is within ``margin`` of the best.

    ``correct[i]`` and ``samples[i]`` are candidate ``i``'s correct validation answers and validation samples,
    summed over the sweep seeds. The comparison is exact (rational arithmetic on the counts and on ``margin``
    as written in decimal), so it cannot depend on how a float happens to round.
    """
    if not correct or len(correct) != len(samples):
        raise ValueError(f"correct and samples must be non-empty and of equal length, got {correct} and {samples}")
    scores = [Fraction(hits, total) for hits, total in zip(correct, samples, strict=True)]
    best = max(scores)
    tolerance = Fraction(str(margin))
    return next(index for index, score in enumerate(scores) if best - score <= tolerance)


# ------------------------------------------------------------------------------------------- the cells


class Monitor(Protocol):
    """What :func:`run_benchmark` reports to: the plan, one progress task per training, one line per result."""

    def plan(self, trainings: int, batches: int, finished: int) -> None:
        """``trainings`` trainings of ``batches`` batches in all are still to run; ``finished`` were resumed."""

    def training(self, description: str, batches: int) -> AbstractContextManager[ProgressTask]:
        """A context manager around one training; its value is advanced once per batch."""

    def note(self, message: str) -> None:
        """One line of news (a finished training, a choice)."""


class SilentMonitor:
    """A :class:`Monitor` that shows nothing."""

    def plan(self, trainings: int, batches: int, finished: int) -> None:
        pass

    def training(self, description: str, batches: int) -> AbstractContextManager[ProgressTask]:
        return silent_progress(description, batches)

    def note(self, message: str) -> None:
        pass


def training_key(framework: str, loss_name: str, candidate: int, seed: int) -> str:
    """Name of a training cell in the store."""
    return f"train.{framework}.{loss_name}.c{candidate}.s{seed}"


def evaluation_key(framework: str, loss_name: str, seed: int) -> str:
    """Name of an evaluation cell in the store."""
    return f"evaluate.{framework}.{loss_name}.s{seed}"


def planned_trainings(config: BenchConfig, time_steps: int, store: CellStore) -> tuple[int, int]:
    """(trainings still to run, trainings already in ``store``) for ``config``.

    Sweep trainings are every candidate x sweep seed; test trainings are the seeds the sweep did not train (all
    of them without a sweep). A test training counts as finished when any candidate's cell exists for its seed
    (the chosen one is not known before the sweep is).
    """
    pending = finished = 0
    for framework in config.frameworks:
        for loss_name in config.losses:
            grid = sweep_grid(loss_name, time_steps, config.learning_rates, sweep=config.sweep)
            sweep_seeds = config.sweep_seeds if len(grid) > 1 else 0  # one candidate: nothing to choose
            keys = [training_key(framework, loss_name, c, s) for s in range(sweep_seeds) for c in range(len(grid))]
            for key in keys:
                done = store.get(key) is not None
                pending, finished = pending + (not done), finished + done
            for seed in range(sweep_seeds, config.seeds):
                done = any(store.get(training_key(framework, loss_name, c, seed)) for c in range(len(grid)))
                pending, finished = pending + (not done), finished + done
    return pending, finished


class _CellRunner:
    """Runs (or reads back) the cells of one benchmark run."""

    def __init__(
        self,
        config: BenchConfig,
        dataset_for_seed: Callable[[int], SpikeDataset],
        store: CellStore,
        monitor: Monitor,
    ) -> None:
        self.config = config
        self.dataset_for_seed = dataset_for_seed
        self.store = store
        self.monitor = monitor
        self.device = torch.device(config.device)

    def _network(self, framework: str, dataset: SpikeDataset, seed: int) -> SpikingNetwork:
        return build_network(
            framework,
            architecture=self.config.architecture,  # type: ignore[arg-type]
            input_shape=dataset.input_shape,
            num_classes=dataset.num_classes,
            hidden_size=self.config.hidden_size,
            seed=seed,
        ).to(self.device)

    def train(self, framework: str, loss_name: str, index: int, candidate: Candidate, seed: int) -> dict[str, Any]:
        """The training cell's record: ``framework``, ``loss``, ``candidate``, ``hyper_parameters``,
        ``learning_rate``, ``seed``, ``curves``, ``validation_correct``, ``validation_samples``,
        ``final_train_loss``, ``seconds_per_epoch``. Trains unless the store has it."""
        key = training_key(framework, loss_name, index, seed)
        record = self.store.get(key)
        needs_weights = seed < self.config.seeds and self.store.get(evaluation_key(framework, loss_name, seed)) is None
        if record is not None and (self.store.has_weights(key) or not needs_weights):
            return record
        # Not stored, or stored without the weights its evaluation still needs: train (deterministic per seed).
        dataset = self.dataset_for_seed(seed)
        network = self._network(framework, dataset, seed)
        train_loader = training_loader(dataset.train, self.config.batch_size, seed=seed)
        validation_loader = make_loader(
            distributed.shard(dataset.validation), self.config.batch_size, shuffle=False, seed=seed
        )
        # Name the learning rate only when the run chooses among several.
        learning_rates = self.config.learning_rates if self.config.sweep else self.config.learning_rates[:1]
        description = f"{framework} {loss_name} {describe_candidate(candidate, learning_rates)} seed {seed}"
        with self.monitor.training(description, self.config.epochs * len(train_loader)) as task:
            curves, (correct, samples) = train_network(
                network,
                make_loss(framework, loss_name, candidate.hyper_parameters),
                train_loader,
                validation_loader,
                epochs=self.config.epochs,
                learning_rate=candidate.learning_rate,
                device=self.device,
                task=task,
            )
        record = {
            "framework": framework,
            "loss": loss_name,
            "candidate": index,
            "hyper_parameters": candidate.hyper_parameters,
            "learning_rate": candidate.learning_rate,
            "seed": seed,
            "curves": asdict(curves),
            "validation_correct": correct,
            "validation_samples": samples,
            "final_train_loss": curves.train_loss[-1],
            "seconds_per_epoch": statistics.fmean(curves.epoch_seconds),
        }
        if needs_weights:
            self.store.save_weights(key, network.state_dict())  # before the record: a record implies its weights
        self.store.put(key, record)
        self.monitor.note(
            f"{description}: validation accuracy {correct / samples:.3f}, {record['seconds_per_epoch']:.1f} s/epoch"
        )
        return record

    def evaluate(self, framework: str, loss_name: str, index: int, seed: int) -> dict[str, Any]:
        """The evaluation cell's record (:func:`evaluate_trained` of the trained network of candidate ``index``)."""
        key = evaluation_key(framework, loss_name, seed)
        record = self.store.get(key)
        if record is None:
            dataset = self.dataset_for_seed(seed)
            network = self._network(framework, dataset, seed)
            # Always from the stored weights, so a resumed run measures exactly what an uninterrupted one does.
            network.load_state_dict(self.store.load_weights(training_key(framework, loss_name, index, seed)))
            record = {
                "candidate": index,
                **evaluate_trained(network, dataset, batch_size=self.config.batch_size, device=self.device),
            }
            self.store.put(key, record)
        self.store.drop_weights(training_key(framework, loss_name, index, seed))
        return record


def _sweep_summary(
    grid: list[Candidate], trainings: list[list[dict[str, Any]]], chosen: int, sweep_seeds: int
) -> dict[str, Any]:
    """The ``sweep`` entry of a framework x loss record (see :func:`run_benchmark`)."""
    candidates = []
    for index, candidate in enumerate(grid):
        cells = [trainings[seed][index] for seed in range(sweep_seeds)]
        correct = sum(cell["validation_correct"] for cell in cells)
        samples = sum(cell["validation_samples"] for cell in cells)
        candidates.append(
            {
                "candidate": index,
                "hyper_parameters": candidate.hyper_parameters,
                "learning_rate": candidate.learning_rate,
                "validation_accuracy": correct / samples,
                "validation_correct": correct,
                "validation_samples": samples,
                "per_seed": [
                    {
                        "seed": cell["seed"],
                        "validation_accuracy": cell["validation_correct"] / cell["validation_samples"],
                        "final_train_loss": cell["final_train_loss"],
                        "curves": {key: cell["curves"][key] for key in ("train_loss", "validation_accuracy")},
                    }
                    for cell in cells
                ],
                "chosen": index == chosen,
            }
        )
    return {"seeds": list(range(sweep_seeds)), "tie_margin": SWEEP_TIE_MARGIN, "candidates": candidates}


def _mean_and_std(values: list[float | None]) -> dict[str, float | None]:
    """Mean and sample standard deviation (0 for one value) of the values that are not None."""
    present = [value for value in values if value is not None and math.isfinite(value)]
    if not present:
        return {"mean": None, "std": None}
    return {"mean": statistics.fmean(present), "std": statistics.stdev(present) if len(present) > 1 else 0.0}


def summarise(seed_records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of every :data:`SUMMARY_METRICS` entry, and the mean accuracy-over-time curve."""

    def value_of(record: dict[str, Any], name: str) -> float | None:
        return record[name] if name in record else record["test"][name]

    summary: dict[str, Any] = {
        name: _mean_and_std([value_of(record, name) for record in seed_records]) for name in SUMMARY_METRICS
    }
    curves = torch.tensor([record["test"]["accuracy_over_time"] for record in seed_records], dtype=torch.float64)
    summary["accuracy_over_time"] = {
        "mean": curves.mean(0).tolist(),
        "std": (curves.std(0) if len(seed_records) > 1 else torch.zeros(curves.shape[1])).tolist(),
    }
    if all("rules" in record.get("early_exit", {}) for record in seed_records):
        summary["early_exit"] = summarise_early_exit([record["early_exit"] for record in seed_records])
    return summary


def summarise_early_exit(per_seed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per early-exit rule (in the seeds' order of rules): ``method``, ``alpha``, ``calibrated_seeds`` (how many
    seeds could calibrate it) and the mean and std over those seeds of every
    :data:`~spikemax_bench.measures.EARLY_EXIT_METRICS` measure."""
    summary = []
    for position, first in enumerate(per_seed[0]["rules"]):
        entries = [seed["rules"][position] for seed in per_seed]
        if any((entry["method"], entry["alpha"]) != (first["method"], first["alpha"]) for entry in entries):
            raise ValueError(f"every seed must list the same early-exit rules; rule {position} differs: {entries}")
        summary.append(
            {
                "method": first["method"],
                "alpha": first["alpha"],
                "calibrated_seeds": sum(entry["rule"] is not None for entry in entries),
                **{name: _mean_and_std([entry[name] for entry in entries]) for name in EARLY_EXIT_METRICS},
            }
        )
    return summary


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

    Returns one JSON-ready record per framework x loss: ``framework``, ``loss``, ``candidate`` (index of the
    chosen grid point), ``hyper_parameters`` and ``learning_rate`` (chosen), ``sweep`` (None without a sweep;
    else ``seeds``, ``tie_margin`` and per candidate its pooled and per-seed validation accuracy and whether it
    was ``chosen``), ``seeds`` (per seed: ``seed``, ``test`` measures, ``final_train_loss``,
    ``seconds_per_epoch``, ``curves``) and ``summary`` (mean and std over seeds).
    """
    store = store if store is not None else MemoryStore()
    monitor = monitor or SilentMonitor()
    time_steps = dataset_for_seed(0).time_steps
    trainings, finished = planned_trainings(config, time_steps, store)
    batches_per_training = config.epochs * len(training_loader(dataset_for_seed(0).train, config.batch_size, seed=0))
    monitor.plan(trainings, trainings * batches_per_training, finished)
    runner = _CellRunner(config, dataset_for_seed, store, monitor)
    records = []
    for framework in config.frameworks:
        for loss_name in config.losses:
            grid = sweep_grid(loss_name, time_steps, config.learning_rates, sweep=config.sweep)
            sweep = None
            chosen = 0
            if len(grid) > 1:  # one candidate (--no-sweep, --quick): nothing to choose, no sweep trainings
                trainings_by_seed = [
                    [runner.train(framework, loss_name, index, candidate, seed) for index, candidate in enumerate(grid)]
                    for seed in range(config.sweep_seeds)
                ]
                pooled = {
                    count: [sum(cells[index][count] for cells in trainings_by_seed) for index in range(len(grid))]
                    for count in ("validation_correct", "validation_samples")
                }
                chosen = choose_candidate(pooled["validation_correct"], pooled["validation_samples"])
                sweep = _sweep_summary(grid, trainings_by_seed, chosen, config.sweep_seeds)
                for seed in range(min(config.sweep_seeds, config.seeds)):
                    for index in range(len(grid)):
                        if index != chosen:
                            store.drop_weights(training_key(framework, loss_name, index, seed))
                monitor.note(
                    f"{framework} {loss_name} chose {describe_candidate(grid[chosen], config.learning_rates)} "
                    f"(pooled validation accuracy {sweep['candidates'][chosen]['validation_accuracy']:.3f} over "
                    f"{config.sweep_seeds} seed(s))"
                )
            seed_records = []
            for seed in range(config.seeds):
                training = runner.train(framework, loss_name, chosen, grid[chosen], seed)
                evaluation = runner.evaluate(framework, loss_name, chosen, seed)
                seed_records.append(
                    {
                        "seed": seed,
                        **{key: value for key, value in evaluation.items() if key != "candidate"},
                        "final_train_loss": training["final_train_loss"],
                        "seconds_per_epoch": training["seconds_per_epoch"],
                        "curves": training["curves"],
                    }
                )
            summary = summarise(seed_records)
            monitor.note(f"{framework} {loss_name}: test accuracy {summary['accuracy']['mean']:.3f}")
            records.append(
                {
                    "framework": framework,
                    "loss": loss_name,
                    "candidate": chosen,
                    "hyper_parameters": grid[chosen].hyper_parameters,
                    "learning_rate": grid[chosen].learning_rate,
                    "sweep": sweep,
                    "seeds": seed_records,
                    "summary": summary,
                }
            )
    return records
