"""Training, evaluation and the hyper-parameter sweep of spikemax-bench, one code path for both frameworks.

For every framework x loss:

1. **Sweep** (validation split only): train one network per hyper-parameter candidate of the loss
   (:func:`loss_candidates`: the same number of candidates, epochs and optimiser settings for every loss) with
   the first seed, and keep the candidate with the highest final validation accuracy; a tie goes to the
   earlier candidate, which is each loss's usual default. The test split is never looked at here.
2. **Test**: the chosen candidate's network of the first seed is evaluated on the test split as it is (it was
   trained exactly as a fresh run would be); every further seed trains a fresh network with the chosen
   hyper-parameters and is evaluated on the test split.

Losses are built through the framework adapters, as a user of each framework would build them
(:func:`make_loss`). Runs are reproducible: each network's initial weights come from ``torch.manual_seed(seed)``
and each data order from a ``torch.Generator`` seeded with ``seed``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from spikemax_plugins import metrics

from .data import ProgressHook, ProgressTask, SpikeDataset, collate_time_first, silent_progress
from .models import FRAMEWORKS, SpikingNetwork, build_network

__all__ = [
    "LOSS_NAMES",
    "SUMMARY_METRICS",
    "BenchConfig",
    "Evaluation",
    "loss_candidates",
    "make_loss",
    "train_network",
    "evaluate",
    "run_benchmark",
]

LOSS_NAMES = ("spikemax_g", "spikemax_s", "ce_count", "mse_count")
LossFunction = Callable[[Tensor, Tensor], Tensor]
HyperParameters = dict[str, float | int]

# Per-seed test measures that get a mean and a standard deviation in the summary.
SUMMARY_METRICS = (
    "accuracy",
    "time_to_decision_steps",
    "time_to_decision_fraction",
    "no_decision_fraction",
    "output_spikes_per_sample",
    "network_spikes_per_sample",
    "synaptic_operations_per_sample",
    "seconds_per_epoch",
    "final_train_loss",
)


@dataclass(frozen=True)
class BenchConfig:
    """Everything that decides the numbers of a benchmark run (recorded in results.json)."""

    dataset: str = "digits-dvs"
    frameworks: tuple[str, ...] = FRAMEWORKS
    losses: tuple[str, ...] = LOSS_NAMES
    epochs: int = 8
    time_steps: int | None = None  # None: the data set's default
    seeds: int = 1
    device: str = "cpu"
    batch_size: int = 64
    learning_rate: float = 2e-3
    hidden_size: int = 128
    architecture: str = "mlp"
    sweep: bool = True
    quick: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "seeds", "batch_size", "hidden_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        unknown = [name for name in self.losses if name not in LOSS_NAMES]
        if unknown or not self.losses:
            raise ValueError(f"losses must be a non-empty subset of {LOSS_NAMES}, got {self.losses}")
        unknown = [name for name in self.frameworks if name not in FRAMEWORKS]
        if unknown or not self.frameworks:
            raise ValueError(f"frameworks must be a non-empty subset of {FRAMEWORKS}, got {self.frameworks}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


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


# ------------------------------------------------------------------------------------- training, evaluation


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int) -> DataLoader:
    """Time-first batches ``([T, B, ...], [B])``; the order of a shuffled loader depends on ``seed`` only."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate_time_first
    )


@dataclass
class Evaluation:
    """Test-set (or validation-set) measures of one trained network.

    ``time_to_decision_steps`` is the mean, over the samples with a decision, of the first step (0-based) from
    which the running prediction never changes (:func:`spikemax_plugins.metrics.time_to_decision`);
    ``time_to_decision_fraction`` is the mean of ``(step + 1) / T``, the share of the sample seen by then.
    Both are ``None`` when no sample has a decision. Network spikes count hidden and output neurons (the input
    is the same for every loss); synaptic operations count the input's and the hidden layers' spikes times
    their fan-out.
    """

    accuracy: float
    accuracy_over_time: list[float]
    time_to_decision_steps: float | None
    time_to_decision_fraction: float | None
    no_decision_fraction: float
    output_spikes_per_sample: float
    network_spikes_per_sample: float
    input_spikes_per_sample: float
    synaptic_operations_per_sample: float
    samples: int


@torch.no_grad()
def evaluate(network: SpikingNetwork, loader: DataLoader, device: torch.device) -> Evaluation:
    """Run ``network`` over ``loader`` and measure accuracy, latency and activity."""
    network.eval()
    outputs: list[Tensor] = []
    labels: list[Tensor] = []
    network_spikes = 0.0
    input_spikes = 0.0
    synaptic_operations = 0.0
    for frames, batch_labels in loader:
        spikes = network(frames.to(device))
        outputs.append(spikes.output.cpu())
        labels.append(batch_labels)
        network_spikes += sum(layer.sum().item() for layer in spikes.layers)
        input_spikes += spikes.input.sum().item()
        synaptic_operations += metrics.synaptic_operations(spikes.presynaptic, network.fan_out).sum().item()
    output = torch.cat(outputs, dim=1)  # [T, N, C]
    target = torch.cat(labels)
    num_steps, samples = output.shape[:2]
    decision_steps = metrics.time_to_decision(output)
    decided = decision_steps >= 0
    mean_step = decision_steps[decided].double().mean().item() if decided.any() else None
    return Evaluation(
        accuracy=metrics.accuracy(output, target).item(),
        accuracy_over_time=metrics.accuracy_over_time(output, target).tolist(),
        time_to_decision_steps=mean_step,
        time_to_decision_fraction=None if mean_step is None else (mean_step + 1) / num_steps,
        no_decision_fraction=1.0 - decided.double().mean().item(),
        output_spikes_per_sample=output.sum().item() / samples,
        network_spikes_per_sample=network_spikes / samples,
        input_spikes_per_sample=input_spikes / samples,
        synaptic_operations_per_sample=synaptic_operations / samples,
        samples=samples,
    )


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
) -> TrainingCurves:
    """Adam on the mean batch loss, full backpropagation through time; the validation set scored per epoch.

    ``task`` is advanced once per training batch.
    """
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    curves = TrainingCurves()
    for _ in range(epochs):
        network.train()
        started = time.perf_counter()
        loss_sum = 0.0
        samples = 0
        for frames, labels in train_loader:
            frames, labels = frames.to(device), labels.to(device)
            loss = loss_function(network(frames).output, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(labels)
            samples += len(labels)
            task.advance()
        curves.epoch_seconds.append(time.perf_counter() - started)
        curves.train_loss.append(loss_sum / samples)
        curves.validation_accuracy.append(evaluate(network, validation_loader, device).accuracy)
    return curves


@dataclass
class TrainedRun:
    network: SpikingNetwork
    curves: TrainingCurves
    seed: int


def _train_run(
    config: BenchConfig,
    dataset: SpikeDataset,
    framework: str,
    loss_name: str,
    hyper_parameters: HyperParameters,
    seed: int,
    progress: ProgressHook,
) -> TrainedRun:
    device = torch.device(config.device)
    network = build_network(
        framework,
        architecture=config.architecture,  # type: ignore[arg-type]
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
        hidden_size=config.hidden_size,
        seed=seed,
    ).to(device)
    train_loader = make_loader(dataset.train, config.batch_size, shuffle=True, seed=seed)
    validation_loader = make_loader(dataset.validation, config.batch_size, shuffle=False, seed=seed)
    description = f"{framework} {loss_name} {describe_hyper_parameters(hyper_parameters)} seed {seed}"
    with progress(description, config.epochs * len(train_loader)) as task:
        curves = train_network(
            network,
            make_loss(framework, loss_name, hyper_parameters),
            train_loader,
            validation_loader,
            epochs=config.epochs,
            learning_rate=config.learning_rate,
            device=device,
            task=task,
        )
    return TrainedRun(network, curves, seed)


def _seed_record(run: TrainedRun, evaluation: Evaluation) -> dict[str, Any]:
    return {
        "seed": run.seed,
        "test": asdict(evaluation),
        "final_train_loss": run.curves.train_loss[-1],
        "seconds_per_epoch": statistics.fmean(run.curves.epoch_seconds),
        "curves": asdict(run.curves),
    }


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
    return summary


def _sweep(
    config: BenchConfig,
    dataset: SpikeDataset,
    framework: str,
    loss_name: str,
    progress: ProgressHook,
    note: Callable[[str], None],
) -> tuple[HyperParameters, TrainedRun, list[dict[str, Any]]]:
    """Train every candidate with seed 0; returns the chosen candidate, its run, and each candidate's record."""
    candidates = loss_candidates(loss_name, dataset.time_steps)
    if not config.sweep:
        candidates = candidates[:1]
    sweep: list[dict[str, Any]] = []
    best: tuple[HyperParameters, TrainedRun] | None = None
    for hyper_parameters in candidates:
        run = _train_run(config, dataset, framework, loss_name, hyper_parameters, 0, progress)
        validation_accuracy = run.curves.validation_accuracy[-1]
        note(
            f"{framework} {loss_name} {describe_hyper_parameters(hyper_parameters)}: validation accuracy "
            f"{validation_accuracy:.3f}, {statistics.fmean(run.curves.epoch_seconds):.1f} s/epoch"
        )
        # Strictly greater: a tie keeps the earlier candidate (the loss's usual default comes first).
        if best is None or validation_accuracy > max(entry["validation_accuracy"] for entry in sweep):
            best = (hyper_parameters, run)
        sweep.append(
            {
                "hyper_parameters": hyper_parameters,
                "validation_accuracy": validation_accuracy,
                "final_train_loss": run.curves.train_loss[-1],
                "curves": asdict(run.curves),
            }
        )
    assert best is not None
    return best[0], best[1], sweep


def run_benchmark(
    config: BenchConfig,
    dataset_for_seed: Callable[[int], SpikeDataset],
    *,
    progress: ProgressHook | None = None,
    note: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Sweep, train and test every framework x loss of ``config``.

    Args:
        dataset_for_seed: the data set whose validation split belongs to a seed (seeds ``0 .. seeds-1``).
        progress: the data loaders' progress hook, here one task per training run advanced per batch.
        note: receives one line per finished run.

    Returns one JSON-ready record per framework x loss: ``framework``, ``loss``, ``hyper_parameters`` (chosen),
    ``sweep`` (every candidate's validation accuracy and curves), ``seeds`` (per-seed test measures and curves)
    and ``summary`` (mean and std over seeds).
    """
    progress = progress or silent_progress
    note = note or (lambda message: None)
    device = torch.device(config.device)
    first_seed_data = dataset_for_seed(0)
    records = []
    for framework in config.frameworks:
        for loss_name in config.losses:
            chosen, best_run, sweep = _sweep(config, first_seed_data, framework, loss_name, progress, note)
            seed_runs = [best_run]
            for seed in range(1, config.seeds):
                seed_runs.append(
                    _train_run(config, dataset_for_seed(seed), framework, loss_name, chosen, seed, progress)
                )
            seed_records = []
            for run in seed_runs:
                test_loader = make_loader(dataset_for_seed(run.seed).test, config.batch_size, shuffle=False, seed=0)
                seed_records.append(_seed_record(run, evaluate(run.network, test_loader, device)))
            summary = summarise(seed_records)
            note(
                f"{framework} {loss_name} chose {describe_hyper_parameters(chosen)}: test accuracy "
                f"{summary['accuracy']['mean']:.3f}"
            )
            records.append(
                {
                    "framework": framework,
                    "loss": loss_name,
                    "hyper_parameters": chosen,
                    "sweep": sweep,
                    "seeds": seed_records,
                    "summary": summary,
                }
            )
    return records
