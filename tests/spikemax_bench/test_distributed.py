"""Multi-process runs: the torchrun environment, evaluation in two processes equal to one process's number for
number (early exit included), DistributedDataParallel training, rank 0 alone deciding and writing, and a whole
``torchrun --nproc_per_node 2`` run, including errors that every rank must see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing

from spikemax_bench import cells as cells_module
from spikemax_bench import cli, loaders, sweep
from spikemax_bench.config import LOSS_NAMES
from spikemax_bench.data import silent_progress
from spikemax_bench.distributed import (
    Launch,
    LaunchError,
    RankError,
    SharedStore,
    close_process_group,
    gather_shards,
    launch_from_environment,
    shard,
)
from spikemax_bench.evaluate import evaluate, evaluate_trained
from spikemax_bench.loaders import make_loader
from spikemax_bench.store import DERIVED_FILES, RESULTS_FILE, MemoryStore
from spikemax_bench.train import train_network

from .synthetic import SIZES, TIME_STEPS, spiking_network, synthetic_dataset

CPU = torch.device("cpu")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


# ------------------------------------------------------------------------------------------ environment


def test_without_torchrun_the_run_is_one_process():
    assert launch_from_environment({"PATH": "/usr/bin"}) == Launch(rank=0, world_size=1, local_rank=0)
    assert not Launch().distributed and Launch().writer


def test_torchrun_variables_give_the_place_of_the_process():
    launch = launch_from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert launch == Launch(rank=3, world_size=4, local_rank=1)
    assert launch.distributed and not launch.writer


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"RANK": "0", "WORLD_SIZE": "2"}, "the environment has RANK, WORLD_SIZE but not LOCAL_RANK"),
        ({"RANK": "0", "WORLD_SIZE": "two", "LOCAL_RANK": "0"}, "WORLD_SIZE must be an integer >= 1, got 'two'"),
        ({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK must be < WORLD_SIZE = 2, got 2"),
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "-1"}, "LOCAL_RANK must be an integer >= 0, got '-1'"),
    ],
)
def test_inconsistent_torchrun_variables_are_refused_naming_the_variable(environment, message):
    with pytest.raises(LaunchError, match=message):
        launch_from_environment(environment)


def test_one_process_keeps_its_splits_and_tensors_whole():
    split = list(range(7))
    assert shard(split) is split
    local = torch.arange(6).view(1, 6)
    assert gather_shards(local, 6) is local


# ------------------------------------------------------------------------------------------ two processes


def _two_process_worker(rank: int, rendezvous: str, out: str) -> None:
    """One of two gloo processes: evaluation, gathering, the shared store and a DDP training, written to JSON."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        dataset = synthetic_dataset()
        network = spiking_network()
        test_shard = make_loader(shard(dataset.test), 14, shuffle=False, seed=0)
        result = {
            "evaluate_trained": evaluate_trained(network, dataset, batch_size=16, device=CPU),
            # Shards of 27 and 26 samples in batches of 14 (short last batches): the states still sum exactly.
            "evaluate": asdict(evaluate(network, test_shard, CPU, num_steps=TIME_STEPS)),
            "order": gather_shards(torch.tensor(list(shard(range(11)))), 11, dim=0).tolist(),
        }
        # Rank 0 alone reads the store; every rank gets what it read, and its errors.
        store = MemoryStore() if rank == 0 else None
        if store is not None:
            store.put("cell", {"seed": 0})
            store.save_weights("cell", {"weight": torch.arange(3.0)})
        shared = SharedStore(store)
        shared.put("written by every rank", {"rank": rank})
        result["store"] = {
            "cell": shared.get("cell"),
            "missing": shared.get("missing"),
            "has_weights": shared.has_weights("cell"),
            "weights": shared.load_weights("cell")["weight"].tolist(),
            "written": shared.get("written by every rank"),
        }
        try:
            shared.load_weights("missing")
        except (KeyError, RankError) as error:
            result["store"]["error"] = f"{type(error).__name__}: {error}"
        # One epoch of DistributedDataParallel training: both processes end with the same weights and curves.
        trained = spiking_network(gain=1.0)
        with silent_progress("training", 4) as task:
            curves, counts = train_network(
                trained,
                sweep.make_loss("snntorch", "spikemax_g", {"smoothing": 1.0}),
                loaders.training_loader(dataset.train, 8, seed=0),
                make_loader(shard(dataset.validation), 16, shuffle=False, seed=0),
                epochs=1,
                learning_rate=1e-2,
                device=CPU,
                task=task,
            )
        result["training"] = {
            "train_loss": curves.train_loss,
            "counts": list(counts),
            "weights": [parameter.tolist() for parameter in trained.parameters()],
            "batches": len(loaders.training_loader(dataset.train, 8, seed=0)),
        }
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        close_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-processes")
    torch.multiprocessing.spawn(
        _two_process_worker, args=(str(folder / "rendezvous"), str(folder)), nprocs=2, join=True
    )
    return [json.loads((folder / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def test_two_processes_evaluate_exactly_as_one(two_processes):
    dataset = synthetic_dataset()
    network = spiking_network()
    one_process = json.loads(json.dumps(evaluate_trained(network, dataset, batch_size=16, device=CPU)))
    for result in two_processes:  # every process gets the whole split's numbers
        assert result["evaluate_trained"] == one_process
        assert result["evaluate"] == one_process["test"]
    # Not a trivial agreement: the early-exit rules were calibrated on all 80 validation samples and exit early.
    rules = one_process["early_exit"]["rules"]
    assert [rule["rule"]["calibration_size"] for rule in rules] == [SIZES["validation"]] * 7
    assert one_process["test"]["samples"] == SIZES["test"] and rules[2]["exit_fraction"] < 0.6


def test_shards_gather_back_in_the_order_of_the_split(two_processes):
    # Rank 0 holds samples 0, 2, ..., 10, rank 1 holds 1, 3, ..., 9.
    assert [result["order"] for result in two_processes] == [list(range(11))] * 2


def test_rank_0_reads_the_cells_for_every_rank_and_alone_writes(two_processes):
    for result in two_processes:
        store = result["store"]
        assert store["cell"] == {"seed": 0} and store["missing"] is None
        assert store["has_weights"] is True and store["weights"] == [0.0, 1.0, 2.0]
        assert store["written"] == {"rank": 0}  # rank 1's put went nowhere
    assert two_processes[0]["store"]["error"] == "KeyError: 'missing'"
    assert two_processes[1]["store"]["error"] == "RankError: rank 0 failed: KeyError: 'missing'"


def test_data_parallel_training_keeps_the_processes_in_step(two_processes):
    first, second = (result["training"] for result in two_processes)
    assert first == second  # same weights, same summed loss and validation counts on both
    assert first["counts"][1] == SIZES["validation"]  # the two shards of validation, no sample twice
    # 30 training samples: 15 per process, in batches of ceil(8 / 2) = 4 so that a step sees about 8 samples.
    assert first["batches"] == 4
    initial = [parameter.tolist() for parameter in spiking_network(gain=1.0).parameters()]
    assert first["weights"] != initial and all(loss > 0 for loss in first["train_loss"])


# ------------------------------------------------------------------------------------------ torchrun


def torchrun(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning"}
    return subprocess.run(
        [*TORCHRUN, "-m", "spikemax_bench", *arguments],
        capture_output=True, text=True, cwd=cwd, env=environment, timeout=120,
    )  # fmt: skip


def test_torchrun_two_processes_write_one_set_of_results(tmp_path):
    completed = torchrun("--quick", "--cache-dir", str(tmp_path / "cache"), "--out", "out", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted(path.name for path in out.iterdir()) == sorted([RESULTS_FILE, *DERIVED_FILES])  # no cells left
    document = json.loads((out / RESULTS_FILE).read_text())
    assert document["provenance"]["world_size"] == 2
    assert document["config"]["quick"] and document["dataset"]["name"] == "digits-dvs"
    assert "2 processes" in (out / "results.md").read_text()
    assert [(record["framework"], record["loss"]) for record in document["records"]] == [
        (framework, loss) for framework in ("snntorch", "norse") for loss in LOSS_NAMES
    ]
    for record in document["records"]:
        (seed,) = record["seeds"]
        assert seed["test"]["samples"] == document["dataset"]["sizes"]["test"]  # both shards, no sample twice
        assert len(seed["test"]["accuracy_over_time"]) == document["dataset"]["time_steps"]
        rules = seed["early_exit"]["rules"]
        assert [rule["rule"]["calibration_size"] for rule in rules[:-1]] == [32] * 6  # all of validation
        assert rules[-1]["rule"] is None and "n >= 39" in rules[-1]["error"]
        assert 0.0 < rules[2]["exit_fraction"] <= 1.0
    # Rank 0 alone shows progress and the tables.
    assert completed.stdout.count("wrote results.json") == 1
    assert completed.stdout.count("[run 1 of 8]") == 1
    assert "2 processes (torchrun)" in completed.stdout


def test_torchrun_errors_stop_every_process_with_one_message(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    completed = torchrun("--quick", "--out", "file", cwd=tmp_path)
    assert completed.returncode != 0
    assert completed.stderr.count("spikemax-bench: error: --out must be a folder") == 1
    assert (tmp_path / "file").read_text() == "not a folder"


def test_torchrun_refuses_to_resume_a_one_process_run(tmp_path, monkeypatch, capsys):
    original, calls = cells_module.train_network, []

    def interrupted(*args, **kwargs):
        calls.append(None)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(cells_module, "train_network", interrupted)
    options = ("--quick", "--dataset", "uci-iris", "--frameworks", "norse", "--out", "out")
    monkeypatch.chdir(tmp_path)
    assert cli.main(list(options)) == cli.INTERRUPTED
    cells = sorted(path.name for path in (tmp_path / "out" / "cells").iterdir())
    completed = torchrun(*options, "--resume", cwd=tmp_path)
    assert completed.returncode != 0
    message = "the number of processes (torchrun --nnodes x --nproc_per_node; 1 without torchrun): the interrupted " \
        "run used 1, this command 2"  # fmt: skip
    assert completed.stderr.count(message) == 1
    assert sorted(path.name for path in (tmp_path / "out" / "cells").iterdir()) == cells  # nothing touched
