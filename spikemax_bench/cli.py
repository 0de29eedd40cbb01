"""``spikemax-bench``: reproduce the SpikeMax paper's comparison with snnTorch and Norse networks.

Shrestha, Zhu and Sun (IJCNN 2022) claim that, compared with the mean-squared spike-count loss, SpikeMax gives
(1) better accuracy, (2) earlier correct decisions and (3) fewer spikes. For each framework x loss the bench
picks the loss's hyper-parameters on the validation split (the same sweep for every loss, see
:mod:`spikemax_bench.run`), trains one network per seed, measures the test split (with early-exit rules
calibrated on the validation split), prints four tables and the paired verdict on each claim, and writes
``results.json``, ``results.csv``, ``results.md`` and four plots to ``--out`` (see
:mod:`spikemax_bench.report`).

With no arguments it runs the embedded ``digits-dvs`` set (no download), both frameworks, the four losses, one
test seed, and a sweep of 6 candidates per loss (3 hyper-parameter values x learning rates 2e-3 and 1e-2) on one
seed: 48 trainings of 8 epochs over 1,151 samples of T = 30 steps, a 968-128-10 LIF network, batch 64, one torch
thread; about 6 minutes on 2 CPU cores.

Every finished training and evaluation is kept under ``--out/cells`` until the results are written, so an
interrupted run continues with ``--resume``; an ``--out`` that already holds results is replaced only with
``--overwrite``.

``torchrun --standalone --nproc_per_node N -m spikemax_bench ...`` runs the same command in N processes
(:mod:`spikemax_bench.distributed`): each network trains with DistributedDataParallel, and rank 0 alone
checks ``--out``, keeps the cells, shows progress and writes the results (which record the world size).

Exit codes: 0 done; 2 bad arguments, an unusable ``--out``, missing or unreadable data (the message names the
expected files) or an unavailable device, each reported before any training where it can be known up front;
130 interrupted (Ctrl-C), with the command that resumes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import torch
from rich.console import Console

from . import distributed
from .arguments import DEFAULT_EPOCHS, QUICK_EPOCHS, build_parser, describe_key
from .config import BenchConfig
from .data import DatasetError, SpikeDataset, load_dataset
from .distributed import Launch, LaunchError, SharedStore, launch_from_environment, process_group
from .provenance import package_versions, provenance, source_digest
from .report.document import results_document, write_derived
from .report.progress import ProgressDisplay
from .report.tables import terminal_report
from .run import run_benchmark
from .store import CellStore, OutputError, RunStore
from .sweep import sweep_grid

# Without a terminal (CI logs, files) rich would fall back to 80 columns and squeeze the results tables.
LOG_WIDTH = 100
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


def _error(message: str) -> int:
    print(f"spikemax-bench: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (argparse exits itself on --help and bad arguments)."""
    arguments = build_parser().parse_args(argv)
    command = ["spikemax-bench", *(sys.argv[1:] if argv is None else argv)]
    # Restored afterwards, so that calling main() in-process leaves the caller's torch as it was.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(arguments.threads)
    try:
        return _run(arguments, command)
    finally:
        torch.set_num_threads(previous_threads)


def resume_command(command: Sequence[str]) -> str:
    """``command`` as it must be repeated to continue: without ``--overwrite``, with ``--resume``."""
    kept = [part for part in command if part != "--overwrite"]
    if "--resume" not in kept:
        kept.append("--resume")
    return shlex.join(kept)


def _config(arguments: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        dataset=arguments.dataset,
        frameworks=arguments.frameworks,
        losses=arguments.losses,
        epochs=arguments.epochs or (QUICK_EPOCHS if arguments.quick else DEFAULT_EPOCHS),
        time_steps=arguments.time_steps,
        seeds=arguments.seeds,
        device=arguments.device,
        batch_size=arguments.batch_size,
        learning_rates=arguments.learning_rates,
        hidden_size=arguments.hidden_size,
        architecture=arguments.architecture,
        sweep=not (arguments.no_sweep or arguments.quick),
        sweep_seeds=arguments.sweep_seeds,
        quick=arguments.quick,
        activity_penalties=arguments.activity_penalties,
    )


def _load_on_every_rank(load: Callable[[], SpikeDataset]) -> SpikeDataset:
    """``load()`` on this process; in a multi-process run rank 0 loads first (it builds the caches and, with
    ``--download``, downloads), then the others, and a :class:`DatasetError` on any rank is raised on every rank,
    so that none waits for the others."""
    if not distributed.is_distributed():
        return load()

    def attempt() -> tuple[SpikeDataset | None, str | None]:
        try:
            return load(), None
        except DatasetError as error:
            return None, str(error)

    dataset: SpikeDataset | None = None
    message: str | None = None
    if distributed.rank() == 0:
        dataset, message = attempt()
    message = distributed.broadcast(message)
    if message is not None:
        raise DatasetError(message)
    if distributed.rank() != 0:
        dataset, message = attempt()
    message = distributed.first_error(message)
    if message is not None:
        raise DatasetError(message)
    assert dataset is not None
    return dataset


def _run(arguments: argparse.Namespace, command: list[str]) -> int:
    started_at, started = time.time(), time.perf_counter()
    try:
        launch = launch_from_environment()
    except LaunchError as error:
        return _error(str(error))
    if arguments.device == "cuda" and not torch.cuda.is_available():
        return _error(
            f"--device cuda was requested but torch {torch.__version__} sees no CUDA device "
            f"(torch.cuda.is_available() is False); use --device cpu"
        )
    if launch.distributed and arguments.device == "cuda" and launch.local_rank >= torch.cuda.device_count():
        return _error(
            f"--device cuda with torchrun: LOCAL_RANK {launch.local_rank} needs GPU {launch.local_rank}, but torch "
            f"sees {torch.cuda.device_count()} CUDA device(s) on this machine; start at most that many processes per "
            "machine (torchrun --nproc_per_node)"
        )
    config = _config(arguments)
    recorded_config: dict[str, Any] = {**asdict(config), "threads": arguments.threads}
    # Everything the cells' numbers depend on: --resume refuses to mix cells made with anything else.
    run_key = {
        "config": recorded_config,
        "packages": package_versions(),
        "source_digest": source_digest(),
        "world_size": launch.world_size,
    }
    with process_group(launch, arguments.device) as group:
        code = _run_processes(arguments, command, launch, config, recorded_config, run_key, (started_at, started))
        group.leave_together = code != INTERRUPTED
        return code


def _run_processes(
    arguments: argparse.Namespace,
    command: list[str],
    launch: Launch,
    config: BenchConfig,
    recorded_config: dict[str, Any],
    run_key: dict[str, Any],
    clock: tuple[float, float],
) -> int:
    """The run on this process (every process of a multi-process run runs it; rank 0 alone writes and prints)."""

    def fail(message: str) -> int:
        return _error(message) if launch.writer else 2

    started_at, started = clock
    store: RunStore | None = None
    problem: str | None = None
    if launch.writer:  # rank 0 checks and prepares --out; every rank learns the outcome
        try:
            store = RunStore.prepare(
                arguments.out,
                run_key=run_key,
                overwrite=arguments.overwrite,
                resume=arguments.resume,
                describe=describe_key,
            )
        except OutputError as error:
            problem = str(error)
    problem = distributed.broadcast(problem)
    if problem is not None:
        return fail(problem)

    if launch.writer:
        console = Console(width=None if sys.stdout.isatty() else LOG_WIDTH)
    else:
        console = Console(quiet=True, force_terminal=False)
    started_cells = False
    try:
        with ProgressDisplay(console) as display:
            loaded: dict[int, SpikeDataset] = {}

            def dataset_for_seed(seed: int) -> SpikeDataset:
                if seed not in loaded:
                    loaded[seed] = _load_on_every_rank(
                        lambda: load_dataset(
                            config.dataset,
                            time_steps=config.time_steps,
                            seed=seed,
                            data_dir=arguments.data_dir,
                            download=arguments.download,
                            cache_dir=arguments.cache_dir,
                            quick=config.quick,
                            progress=display.task,
                        )
                    )
                return loaded[seed]

            try:
                dataset = dataset_for_seed(0)
            except DatasetError as error:
                return fail(str(error))
            if config.architecture == "conv" and dataset.kind != "events":
                return fail(
                    f"--architecture conv needs an event data set (2, height, width); {dataset.name} is "
                    f"{dataset.kind} with input shape {dataset.input_shape}; use --architecture mlp"
                )
            processes = f"; {launch.world_size} processes (torchrun)" if launch.distributed else ""
            display.note(
                f"{dataset.name}: {len(dataset.train)} train / {len(dataset.validation)} validation / "
                f"{len(dataset.test)} test samples, T = {dataset.time_steps}, input {dataset.input_shape}, "
                f"{dataset.num_classes} classes; {', '.join(config.frameworks)} x {', '.join(config.losses)}, "
                f"{config.epochs} epoch(s), "
                f"{f'sweep on validation over {config.sweep_seeds} seed(s)' if config.sweep else 'no sweep'}, "
                f"{config.seeds} test seed(s){' (SMOKE RUN: --quick)' if config.quick else ''}{processes}"
            )
            resumed_cells = 0
            if store is not None:
                store.begin()
                resumed_cells = store.finished_cells()
            started_cells = True
            cells: CellStore = SharedStore(store) if launch.distributed else store  # type: ignore[assignment]
            try:
                records = run_benchmark(config, dataset_for_seed, store=cells, monitor=display)
            except DatasetError as error:  # a later seed's data: what is finished stays for --resume
                return fail(f"{error}\nThe finished trainings are kept; after fixing this: {resume_command(command)}")
    except KeyboardInterrupt:
        if not launch.writer:
            return INTERRUPTED
        if not started_cells:
            print("\nspikemax-bench: interrupted before any training; nothing was written.", file=sys.stderr)
        else:
            assert store is not None
            print(
                f"\nspikemax-bench: interrupted. {store.finished_cells()} finished cell(s) are kept in {store.cells}; "
                f"continue with:\n  {resume_command(command)}",
                file=sys.stderr,
            )
        return INTERRUPTED
    if store is None:  # not rank 0: rank 0 writes the results
        return 0

    config_record = {**recorded_config, "data_dir": arguments.data_dir, "cache_dir": arguments.cache_dir}
    document = results_document(
        config=config_record,
        dataset=dataset,
        records=records,
        grid={
            loss: sweep_grid(loss, dataset.time_steps, config.learning_rates, sweep=config.sweep)
            for loss in config.losses
        },
        provenance=provenance(
            argv=command,
            started=started_at,
            wall_seconds=time.perf_counter() - started,
            world_size=launch.world_size,
            resumed_cells=resumed_cells,
            digest=run_key["source_digest"],
            packages=run_key["packages"],
        ),
    )
    try:
        paths = store.publish(document, write_derived)
    except KeyboardInterrupt:
        print(
            f"\nspikemax-bench: interrupted while writing the results; every cell is kept in {store.cells}. "
            f"Write the results with:\n  {resume_command(command)}",
            file=sys.stderr,
        )
        return INTERRUPTED
    for renderable in terminal_report(document):
        console.print(renderable, highlight=False)
    console.print(
        f"wrote {', '.join(path.name for path in paths)} to {arguments.out} "
        f"({document['provenance']['wall_seconds']:.0f} s in all)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return 0
