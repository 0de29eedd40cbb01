"""The sweep: each loss's hyper-parameter grid, the loss built as each framework's users build it, and the choice.

For every framework x loss every candidate of :func:`sweep_grid` (the loss's hyper-parameter candidates x the
learning rates) is trained with each sweep seed; a candidate's score is its validation accuracy pooled over those
seeds, and :func:`choose_candidate` keeps the earliest candidate within :data:`SWEEP_TIE_MARGIN` of the best.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from torch import Tensor

from .config import LOSS_NAMES, HyperParameters
from .models import FRAMEWORKS

__all__ = [
    "SWEEP_TIE_MARGIN",
    "Candidate",
    "LossFunction",
    "choose_candidate",
    "describe_candidate",
    "describe_hyper_parameters",
    "loss_candidates",
    "make_loss",
    "sweep_grid",
    "sweep_summary",
]

LossFunction = Callable[[Tensor, Tensor], Tensor]

# Candidates whose pooled validation accuracy is within this of the best count as tied, and the earliest wins.
# One percentage point: about 3 of digits-dvs' 287 validation samples per seed, well below the sampling error of
# such an accuracy (sqrt(0.9 * 0.1 / 287) = 0.018), so it only ever breaks differences the data cannot resolve.
SWEEP_TIE_MARGIN = 0.01


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


def sweep_summary(
    grid: list[Candidate], trainings: list[list[dict[str, Any]]], chosen: int, sweep_seeds: int
) -> dict[str, Any]:
    """The ``sweep`` entry of a framework x loss record (see :func:`~spikemax_bench.run.run_benchmark`)."""
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
