"""``spikemax-bench``: reproduce the SpikeMax paper's comparison with snnTorch and Norse networks.

Shrestha, Zhu and Sun (IJCNN 2022) claim that, compared with the mean-squared spike-count loss, SpikeMax gives
(1) better accuracy, (2) earlier correct decisions and (3) fewer spikes. For each framework x loss the bench
picks the loss's hyper-parameters on the validation split (the same small sweep for every loss, see
:func:`spikemax_plugins.bench.run.loss_candidates`), trains, measures the test split, prints a table and writes
``results.json``, ``results.csv``, ``results.md`` (with a verdict on each claim) and three plots to ``--out``.

With no arguments it runs the embedded ``digits-dvs`` set (no download), both frameworks, the four losses,
one seed. Budget of that default run: 24 trainings (2 frameworks x 4 losses x 3 sweep candidates) of 8 epochs
over 1,151 samples of T = 30 steps, a 968-128-10 LIF network, batch 64, one torch thread. Measured on 2 CPU
cores: 3 min 10 s from an empty cache (building the digits-dvs frames included), 0.8 s per epoch; the same
command took 8.5 min with two torch threads while other processes kept both cores busy. Going beyond the
10-minute target is left to the options (``--epochs``, ``--seeds``, ``--architecture conv``, ``--dataset``).

Exit codes: 0 done; 2 bad arguments, missing data (the message names the expected files) or an unavailable
device.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

import torch
from rich.console import Console

from .data import DATASET_NAMES, DatasetNotFoundError, SpikeDataset, load_dataset
from .models import ARCHITECTURES, FRAMEWORKS
from .report import ProgressDisplay, results_document, results_table, write_results
from .run import LOSS_NAMES, BenchConfig, loss_candidates, run_benchmark

DEFAULT_EPOCHS = BenchConfig.epochs
QUICK_EPOCHS = 1
# Without a terminal (CI logs, files) rich would fall back to 80 columns and squeeze the results table.
LOG_WIDTH = 200


def _losses(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in LOSS_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(LOSS_NAMES)}; got {text!r}")
    return tuple(dict.fromkeys(names))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikemax-bench",
        description="Compare SpikeMax with the MSE spike-count loss (and softmax cross-entropy of counts) on "
        "the same small spiking networks in snnTorch and Norse: accuracy, decision time, spikes.",
        epilog="With no arguments: digits-dvs (embedded, no download), both frameworks, the four losses, "
        "1 seed, results in results/.",
    )
    parser.add_argument(
        "--dataset", choices=DATASET_NAMES, default="digits-dvs", help="data set to train on (default: %(default)s)"
    )
    parser.add_argument(
        "--framework",
        choices=(*FRAMEWORKS, "both"),
        default="both",
        help="which framework's networks to train (default: %(default)s)",
    )
    parser.add_argument(
        "--losses",
        type=_losses,
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
        "--seeds", type=_positive_int, default=1, help="seeds 0..N-1; results give mean ± std (default: %(default)s)"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="torch device to train on (default: %(default)s)"
    )
    parser.add_argument(
        "--out", default="results", help="folder for results.json/.csv/.md and the plots (default: %(default)s/)"
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
        help=f"smoke run in seconds: tiny data subsets, {QUICK_EPOCHS} epoch, no sweep",
    )
    parser.add_argument(
        "--no-sweep",
        action="store_true",
        help="skip the validation sweep and use each loss's default hyper-parameters",
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=BenchConfig.batch_size, help="batch size (default: %(default)s)"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=BenchConfig.learning_rate,
        help="Adam learning rate, the same for every loss (default: %(default)s)",
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


def _error(message: str) -> int:
    print(f"spikemax-bench: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (argparse exits itself on --help and bad arguments)."""
    arguments = build_parser().parse_args(argv)
    # Restored afterwards, so that calling main() in-process leaves the caller's torch as it was.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(arguments.threads)
    try:
        return _run(arguments, argv)
    finally:
        torch.set_num_threads(previous_threads)


def _run(arguments: argparse.Namespace, argv: Sequence[str] | None) -> int:
    if arguments.device == "cuda" and not torch.cuda.is_available():
        return _error(
            f"--device cuda was requested but torch {torch.__version__} sees no CUDA device "
            f"(torch.cuda.is_available() is False); use --device cpu"
        )
    if not arguments.learning_rate > 0:
        return _error(f"--learning-rate must be > 0, got {arguments.learning_rate}")
    config = BenchConfig(
        dataset=arguments.dataset,
        frameworks=FRAMEWORKS if arguments.framework == "both" else (arguments.framework,),
        losses=arguments.losses,
        epochs=arguments.epochs or (QUICK_EPOCHS if arguments.quick else DEFAULT_EPOCHS),
        time_steps=arguments.time_steps,
        seeds=arguments.seeds,
        device=arguments.device,
        batch_size=arguments.batch_size,
        learning_rate=arguments.learning_rate,
        hidden_size=arguments.hidden_size,
        architecture=arguments.architecture,
        sweep=not (arguments.no_sweep or arguments.quick),
        quick=arguments.quick,
    )
    console = Console(width=None if sys.stdout.isatty() else LOG_WIDTH)
    started = time.perf_counter()
    with ProgressDisplay(console) as display:
        loaded: dict[int, SpikeDataset] = {}

        def dataset_for_seed(seed: int) -> SpikeDataset:
            if seed not in loaded:
                loaded[seed] = load_dataset(
                    config.dataset,
                    time_steps=config.time_steps,
                    seed=seed,
                    data_dir=arguments.data_dir,
                    download=arguments.download,
                    cache_dir=arguments.cache_dir,
                    quick=config.quick,
                    progress=display.task,
                )
            return loaded[seed]

        try:
            dataset = dataset_for_seed(0)
        except DatasetNotFoundError as error:
            return _error(str(error))
        if config.architecture == "conv" and dataset.kind != "events":
            return _error(
                f"--architecture conv needs an event data set (2, height, width); {dataset.name} is "
                f"{dataset.kind} with input shape {dataset.input_shape}; use --architecture mlp"
            )
        display.note(
            f"{dataset.name}: {len(dataset.train)} train / {len(dataset.validation)} validation / "
            f"{len(dataset.test)} test samples, T = {dataset.time_steps}, input {dataset.input_shape}, "
            f"{dataset.num_classes} classes; {', '.join(config.frameworks)} x {', '.join(config.losses)}, "
            f"{config.epochs} epoch(s), {'sweep on validation' if config.sweep else 'no sweep'}"
        )
        records = run_benchmark(config, dataset_for_seed, progress=display.task, note=display.note)
    document = results_document(
        config={**asdict(config), "data_dir": arguments.data_dir, "cache_dir": arguments.cache_dir},
        dataset=dataset,
        records=records,
        candidates={loss: loss_candidates(loss, dataset.time_steps) for loss in config.losses},
        command=["spikemax-bench", *(sys.argv[1:] if argv is None else argv)],
        total_seconds=time.perf_counter() - started,
    )
    paths = write_results(document, arguments.out)
    console.print(results_table(document))
    for verdict in document["verdicts"]:
        console.print(f"[bold]{verdict['claim']}: {verdict['overall']}[/bold]")
        for comparison in verdict["comparisons"]:
            console.print(f"  {comparison['text']}", highlight=False)
    console.print(
        f"wrote {', '.join(path.name for path in paths)} to {arguments.out} ({document['total_seconds']:.0f} s in all)",
        highlight=False,
    )
    return 0
