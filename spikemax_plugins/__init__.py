"""SpikeMax spike-count losses and decision metrics for spiking neural networks.

Framework-agnostic core over spike tensors ``[T, B, N]`` (or any layout, with ``time_dim``); imports neither
snnTorch nor Norse. :func:`set_value_checks` / :class:`value_checks` turn the value checks off for speed.
"""

from . import early_exit, functional, metrics, modules, reference
from ._value_checks import set_value_checks, value_checks, value_checks_enabled
from .functional import activity_penalty, mse_count, spikemax_g, spikemax_s
from .metrics import (
    accuracy,
    accuracy_over_time,
    predict,
    spike_counts,
    synaptic_operations,
    time_to_decision,
)
from .modules import ActivityPenalty, MSECountLoss, SpikeMaxGLoss, SpikeMaxSLoss

__version__ = "0.2.0"


def __getattr__(name: str) -> object:
    # spikemax_plugins.streaming imports torchmetrics, which imports torchvision whenever it is installed (and a
    # torchvision built for another torch fails to load): the core must import without it.
    if name == "streaming":
        import importlib

        return importlib.import_module(f"{__name__}.streaming")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "early_exit",
    "streaming",
    "functional",
    "metrics",
    "modules",
    "reference",
    "set_value_checks",
    "value_checks",
    "value_checks_enabled",
    "spikemax_g",
    "spikemax_s",
    "mse_count",
    "spike_counts",
    "predict",
    "accuracy",
    "accuracy_over_time",
    "time_to_decision",
    "synaptic_operations",
    "SpikeMaxGLoss",
    "SpikeMaxSLoss",
    "MSECountLoss",
    "activity_penalty",
    "ActivityPenalty",
]
