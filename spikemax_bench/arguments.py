"""The command line of ``spikemax-bench``: its options, their checks and their defaults (see :mod:`.cli`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .config import LOSS_NAMES, BenchConfig
from .data import DATASET_NAMES
from .models import ARCHITECTURES, FRAMEWORKS

__all__ = ["DEFAULT_EPOCHS", "OPTION_OF_KEY", "QUICK_EPOCHS", "build_parser", "describe_key"]

DEFAULT_EPOCHS = BenchConfig.epochs
QUICK_EPOCHS = 1

# The option behind each field of the run key, for --resume's message when the configuration differs.
OPTION_OF_KEY = {
    "config.dataset": "--dataset",
    "config.frameworks": "--frameworks",
    "config.losses": "--losses",
    "config.epochs": "--epochs",
    "config.time_steps": "--time-steps",
    "config.seeds": "--seeds",
    "config.device": "--device",
    "config.batch_size": "--batch-size",
    "config.learning_rates": "--learning-rates",
    "config.hidden_size": "--hidden-size",
    "config.architecture": "--architecture",
    "config.sweep": "--no-sweep / --quick",
    "config.sweep_seeds": "--sweep-seeds",
    "config.quick": "--quick",
    "config.threads": "--threads",
    "config.activity_penalties": "--activity-penalty",
    "source_digest": "the source code of spikemax_plugins, spikemax_bench and the adapters (SHA-256)",
    "world_size": "the number of processes (torchrun --nnodes x --nproc_per_node; 1 without torchrun)",
}


def describe_key(path: str) -> str:
    """The option (or the thing) behind the run-key field ``path``, for --resume's message."""
    if path.startswith("packages."):
        return f"the installed version of {path.removeprefix('packages.')}"
    return OPTION_OF_KEY.get(path, path)


def _name_list(choices: Sequence[str], option: str):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in text.split(",") if name.strip())
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"{option} expects a comma-separated list of {', '.join(choices)}; got {text!r}"
            )
        return tuple(dict.fromkeys(names))

    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _distinct_numbers(option: str, *, zero_allowed: bool, example: str):
    """A parser of ``option``'s comma-separated list of distinct finite numbers, > 0 (or >= 0 with
    ``zero_allowed``)."""

    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError:
            values = ()
        in_range = all((0 <= value if zero_allowed else 0 < value) and value < float("inf") for value in values)
        if not values or not in_range or len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(
                f"{option} expects a comma-separated list of distinct numbers {'>=' if zero_allowed else '>'} 0 "
                f"(e.g. {example}); got {text!r}"
            )
        return values

    return parse


_learning_rates = _distinct_numbers("--learning-rates", zero_allowed=False, example="2e-3,5e-3")
_activity_penalties = _distinct_numbers("--activity-penalty", zero_allowed=True, example="0,0.1,1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikemax-bench",
        description="Compare SpikeMax with the MSE spike-count loss (and softmax cross-entropy of counts) on "
        "the same small spiking networks in snnTorch and Norse: accuracy, decision time, spikes.",
        epilog="With no arguments: digits-dvs (embedded, no download), both frameworks, the four losses, "
        "1 test seed, a 6-candidate sweep per loss, results in results/. List options are "
        "comma-separated and plural; the singular spelling (--framework, --loss, --learning-rate) is an alias.",
    )
    parser.add_argument(
        "--dataset", choices=DATASET_NAMES, default="digits-dvs", help="data set to train on (default: %(default)s)"
    )
    parser.add_argument(
        "--frameworks",
        "--framework",
        dest="frameworks",
        type=_name_list(FRAMEWORKS, "--frameworks"),
        default=FRAMEWORKS,
        metavar="LIST",
        help=f"comma-separated frameworks among {','.join(FRAMEWORKS)} (default: both)",
    )
    parser.add_argument(
        "--losses",
        "--loss",
        dest="losses",
        type=_name_list(LOSS_NAMES, "--losses"),
        default=LOSS_NAMES,
        metavar="LIST",
        help=f"comma-separated losses among {','.join(LOSS_NAMES)} (default: all four)",
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help=f"training epochs per run (default: {DEFAULT_EPOCHS}; {QUICK_EPOCHS} with --quick)",
    )
    parser.add_argument(
        "--time-steps", type=_positive_int, default=None, help="time steps T per sample (default: the data set's)"
    )
    parser.add_argument(
        "--seeds",
        type=_positive_int,
        default=1,
        help="test seeds 0..N-1: one network per seed and loss, mean ± std, and with N >= 2 a paired 95%% "
        "confidence interval per claim (default: %(default)s)",
    )
    parser.add_argument(
        "--sweep-seeds",
        type=_positive_int,
        default=None,
        help="seeds 0..N-1 over which the sweep pools each candidate's validation accuracy (default: the smaller "
        "of --seeds and 2)",
    )
    parser.add_argument(
        "--learning-rates",
        "--learning-rate",
        dest="learning_rates",
        type=_learning_rates,
        default=BenchConfig.learning_rates,
        metavar="LIST",
        help="Adam learning rates of the sweep grid, the first being the default; the same for every loss "
        f"(default: {','.join(f'{rate:g}' for rate in BenchConfig.learning_rates)})",
    )
    parser.add_argument(
        "--activity-penalty",
        dest="activity_penalties",
        type=_activity_penalties,
        default=BenchConfig.activity_penalties,
        metavar="LIST",
        help="weights λ of the activity regulariser, comma-separated: each λ trains every loss again with "
        "loss + λ · Σ_layers activity_penalty(spikes) (the mean firing rate of each layer); the sweep runs at the "
        "first λ only (default: 0, no regulariser)",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="torch device to train on (default: %(default)s)"
    )
    parser.add_argument(
        "--out", default="results", help="folder for results.json/.csv/.md and the plots (default: %(default)s/)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results already in --out (kept until the new ones are written)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out (same options), skipping its finished trainings",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the recorded data sets in tonic's layout (default: ~/.cache/spikemax-plugins/datasets)",
    )
    parser.add_argument(
        "--download", action="store_true", help="download a missing data set (never done without this flag)"
    )
    parser.add_argument(
        "--cache-dir", default=None, help="folder for built spike frames (default: ~/.cache/spikemax-plugins)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run in seconds: tiny data subsets, {QUICK_EPOCHS} epoch, no sweep, no verdict",
    )
    parser.add_argument(
        "--no-sweep",
        action="store_true",
        help="skip the validation sweep and use each loss's default hyper-parameters and the first learning rate",
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=BenchConfig.batch_size, help="batch size (default: %(default)s)"
    )
    parser.add_argument(
        "--hidden-size",
        type=_positive_int,
        default=BenchConfig.hidden_size,
        help="hidden LIF neurons of the mlp (default: %(default)s)",
    )
    parser.add_argument(
        "--architecture",
        choices=ARCHITECTURES,
        default=BenchConfig.architecture,
        help="mlp: one hidden layer; conv: two strided convolutions, event data sets only (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads; the per-step operations are small, and one thread avoids OpenMP threads "
        "spin-waiting for each other when other processes share the cores (default: %(default)s)",
    )
    return parser
