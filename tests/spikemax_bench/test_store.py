"""A bench that never loses or mangles a result: --out checks before any training, --overwrite, cells kept as
they finish, --resume reaching the numbers of an uninterrupted run, Ctrl-C while training or while writing,
data errors, and a store that does not write (the ranks other than 0 of a later multi-process run)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from spikemax_bench import cells as cells_module
from spikemax_bench import cli
from spikemax_bench import data as data_module
from spikemax_bench import store as store_module
from spikemax_bench.arguments import describe_key
from spikemax_bench.compare import differences
from spikemax_bench.report import document as report_document
from spikemax_bench.store import OutputError, RunStore, atomic_write_bytes

# 2 losses x (3 candidates x 2 sweep seeds + test seed 2) = 14 trainings of one epoch on 96 iris samples.
SMALL = ("--dataset", "uci-iris", "--time-steps", "6", "--epochs", "1", "--frameworks", "snntorch",
         "--losses", "spikemax_g,mse_count", "--learning-rates", "0.002", "--seeds", "3")  # fmt: skip
TRAININGS = 14
DERIVED = ("results.csv", "results.md", "accuracy_vs_time.png", "spikes_per_sample.png", "training_curves.png",
           "early_exit.png", "energy.png")  # fmt: skip


def bench(out: Path, *options: str) -> int:
    return cli.main([*options, "--out", str(out)])


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    assert bench(out, *SMALL) == 0
    return results(out)


@pytest.fixture
def no_data_loading(monkeypatch):
    """Fails the test if the bench gets as far as loading data (so: before any training)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the bench loaded data although the check should have stopped it first")

    monkeypatch.setattr(cli, "load_dataset", refuse)


def interrupt_call(monkeypatch, module, name: str, call: int) -> None:
    """Make ``module.name`` raise KeyboardInterrupt (what Ctrl-C raises) on its ``call``-th call."""
    original = getattr(module, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(None)
        if len(calls) == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


# ------------------------------------------------------------------------------- --out, before any training


def test_out_that_is_a_file_exits_2_before_any_training(tmp_path, capsys, no_data_loading):
    target = tmp_path / "results"
    target.write_text("not a folder")
    assert bench(target, "--quick") == 2
    assert f"--out must be a folder, but {target} is an existing file" in capsys.readouterr().err
    assert target.read_text() == "not a folder"


def test_out_under_a_file_exits_2_before_any_training(tmp_path, capsys, no_data_loading):
    (tmp_path / "notes.txt").write_text("x")
    assert bench(tmp_path / "notes.txt" / "run" / "one", "--quick") == 2
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in capsys.readouterr().err


def test_out_that_cannot_be_written_exits_2_before_any_training(tmp_path, capsys, monkeypatch, no_data_loading):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store_module.tempfile, "mkstemp", refuse)
    assert bench(tmp_path / "out", "--quick") == 2
    error = capsys.readouterr().err
    assert f"--out {tmp_path / 'out'} must be a folder this user can write" in error
    assert "Permission denied" in error and "Traceback" not in error


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_out_exits_2(tmp_path, capsys, no_data_loading):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert bench(folder, "--quick") == 2
    finally:
        folder.chmod(0o700)
    assert "must be a folder this user can write" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("existing", "options", "message"),
    [
        ("results.json", (), "already holds results (results.json); pass --overwrite to replace them, --resume"),
        ("cells/run.json", (), "already holds results (cells/)"),
        (None, ("--resume",), "holds no interrupted run (cells/run.json is missing)"),
        ("results.json", ("--resume",), "holds a finished run (results.json) and no interrupted one; pass --overwrite"),
        ("results.json", ("--resume", "--overwrite"), "--overwrite and --resume exclude each other"),
    ],
)
def test_existing_results_are_kept_unless_asked(tmp_path, capsys, no_data_loading, existing, options, message):
    if existing:
        (tmp_path / existing).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / existing).write_text('{"precious": true}')
    assert bench(tmp_path, "--quick", *options) == 2
    assert message in capsys.readouterr().err
    if existing:
        assert (tmp_path / existing).read_text() == '{"precious": true}'


def test_overwrite_replaces_a_finished_run(tmp_path):
    assert bench(tmp_path, "--quick", "--dataset", "uci-iris", "--losses", "spikemax_g") == 0
    assert bench(tmp_path, "--quick", "--dataset", "uci-iris", "--losses", "spikemax_g") == 2
    assert bench(tmp_path, "--quick", "--dataset", "uci-iris", "--losses", "mse_count", "--overwrite") == 0
    assert [record["loss"] for record in results(tmp_path)["records"]] == ["mse_count", "mse_count"]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["results.json", *DERIVED])  # no cells left


# ------------------------------------------------------------------------------------- interrupt and resume


@pytest.mark.parametrize(
    ("module", "function", "call", "finished_trainings"),
    [
        (cells_module, "train_network", 9, 8),  # during the second loss's sweep
        (cells_module, "evaluate_trained", 2, 6),  # while measuring the first loss's second test seed
        (cells_module, "train_network", 14, 13),  # during the last training
    ],
)
def test_an_interrupted_run_resumes_to_the_numbers_of_an_uninterrupted_one(
    tmp_path, capsys, monkeypatch, uninterrupted, module, function, call, finished_trainings
):
    with monkeypatch.context() as patch:
        interrupt_call(patch, module, function, call)
        assert bench(tmp_path, *SMALL) == cli.INTERRUPTED
    error = capsys.readouterr().err
    resume = f"spikemax-bench {' '.join(SMALL)} --out {tmp_path} --resume"
    assert f"continue with:\n  {resume}" in error
    cells = tmp_path / "cells"
    assert len(list(cells.glob("train.*.json"))) == finished_trainings
    assert not (tmp_path / "results.json").exists()
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written file
    if function == "evaluate_trained":
        # The network whose evaluation was interrupted (seed 1's chosen candidate) is on disk, to be measured after
        # --resume; seed 0's was measured and dropped, and so were the candidates the sweep did not choose.
        weights = [path.name for path in cells.glob("*.pt")]
        assert len(weights) == 1 and weights[0].startswith("train.snntorch.spikemax_g.c")
        assert weights[0].endswith(".s1.pt")

    assert bench(tmp_path, *SMALL, "--resume") == 0
    assert f"resuming: {finished_trainings} training(s) already finished" in capsys.readouterr().out
    resumed = results(tmp_path)
    assert differences(resumed, uninterrupted) == []  # early exit included: its rules and measures are compared
    assert all(seed["early_exit"]["rules"][2]["rule"] for record in resumed["records"] for seed in record["seeds"])
    assert resumed["provenance"]["resumed_cells"] >= finished_trainings
    assert not cells.exists()


def test_resume_refuses_another_configuration_naming_what_differs(tmp_path, capsys, monkeypatch):
    with monkeypatch.context() as patch:
        interrupt_call(patch, cells_module, "train_network", 3)
        assert bench(tmp_path, *SMALL) == cli.INTERRUPTED
    before = sorted(path.name for path in (tmp_path / "cells").iterdir())
    changed = [option if option != "1" else "2" for option in SMALL]  # --epochs 2
    assert bench(tmp_path, *changed, "--threads", "2", "--resume") == 2
    error = capsys.readouterr().err
    assert "--epochs: the interrupted run used 1, this command 2" in error
    assert "--threads: the interrupted run used 1, this command 2" in error
    assert sorted(path.name for path in (tmp_path / "cells").iterdir()) == before


def test_a_new_run_with_overwrite_drops_the_cells_of_an_interrupted_one(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        interrupt_call(patch, cells_module, "train_network", 3)
        assert bench(tmp_path, *SMALL) == cli.INTERRUPTED
    calls = []
    original = cells_module.train_network

    def counting(*args, **kwargs):
        calls.append(None)
        return original(*args, **kwargs)

    monkeypatch.setattr(cells_module, "train_network", counting)
    assert bench(tmp_path, *SMALL, "--overwrite") == 0
    assert len(calls) == TRAININGS  # nothing was read back from the older cells
    assert results(tmp_path)["provenance"]["resumed_cells"] == 0


def test_ctrl_c_before_any_training_says_nothing_was_written(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_dataset", interrupted)
    assert bench(tmp_path / "out", "--quick") == cli.INTERRUPTED
    assert "interrupted before any training; nothing was written" in capsys.readouterr().err
    assert not (tmp_path / "out" / "cells").exists()


# ---------------------------------------------------------------------------------- interrupted writing


@pytest.fixture
def old_run(tmp_path):
    """A finished one-seed run in tmp_path, and the bytes of each of its files."""
    assert bench(tmp_path, *SMALL[:-1], "1", "--no-sweep") == 0
    return {path.name: path.read_bytes() for path in tmp_path.iterdir()}


def test_ctrl_c_while_writing_derived_files_never_leaves_old_plots_beside_new_results(
    tmp_path, capsys, monkeypatch, old_run
):
    def interrupted_plots(document, out_dir):
        raise KeyboardInterrupt
        yield  # a generator, like the real one

    with monkeypatch.context() as patch:
        patch.setattr(report_document, "write_plots", interrupted_plots)
        assert bench(tmp_path, *SMALL, "--overwrite") == cli.INTERRUPTED
    assert f"Write the results with:\n  spikemax-bench {' '.join(SMALL)} --out {tmp_path} --resume" in (
        capsys.readouterr().err
    )
    assert results(tmp_path)["config"]["seeds"] == 3  # the new run's results.json...
    for name in DERIVED:  # ...and no file of the old run beside it
        path = tmp_path / name
        assert not path.exists() or path.read_bytes() != old_run[name], name
    assert not (tmp_path / "accuracy_vs_time.png").exists()
    assert "3 seeds" in (tmp_path / "results.md").read_text()

    assert bench(tmp_path, *SMALL, "--resume") == 0  # every cell is finished: just writes the files
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["results.json", *DERIVED])
    assert results(tmp_path)["provenance"]["resumed_cells"] > TRAININGS


def test_ctrl_c_before_results_json_is_replaced_keeps_the_old_one_alone(tmp_path, monkeypatch, old_run):
    original = store_module.atomic_write_text

    def interrupted(path, text):
        if Path(path).name == "results.json":
            raise KeyboardInterrupt
        original(path, text)

    with monkeypatch.context() as patch:
        patch.setattr(store_module, "atomic_write_text", interrupted)
        assert bench(tmp_path, *SMALL, "--overwrite") == cli.INTERRUPTED
    assert (tmp_path / "results.json").read_bytes() == old_run["results.json"]
    assert not any((tmp_path / name).exists() for name in DERIVED)  # old derived files removed, no new ones


def test_atomic_write_leaves_the_old_file_and_no_temporary_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_bytes(b"old")

    def interrupted(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"]


# ----------------------------------------------------------------------------------------- data errors


def test_the_cli_catches_the_data_loaders_error_base_class():
    assert cli.DatasetError is getattr(data_module, "DatasetError", data_module.DatasetNotFoundError)
    assert issubclass(data_module.DatasetNotFoundError, cli.DatasetError)


def test_a_data_error_exits_2_with_its_message_before_any_training(tmp_path, capsys, monkeypatch):
    class CorruptRecording(cli.DatasetError):
        pass

    def broken(*args, **kwargs):
        raise CorruptRecording("the recording /data/NMNIST/Test/3/00412.bin is truncated (7 bytes)")

    monkeypatch.setattr(cli, "load_dataset", broken)
    assert bench(tmp_path, "--quick") == 2
    error = capsys.readouterr().err
    assert "spikemax-bench: error: the recording /data/NMNIST/Test/3/00412.bin is truncated" in error
    assert "Traceback" not in error
    assert list(tmp_path.iterdir()) == []  # nothing written, not even the cells folder


def test_a_data_error_for_a_later_seed_keeps_the_finished_cells(tmp_path, capsys, monkeypatch):
    original = cli.load_dataset

    def missing_seed_2(name, **options):
        if options["seed"] == 2:
            raise data_module.DatasetNotFoundError("expected the files under /data/seed-2")
        return original(name, **options)

    monkeypatch.setattr(cli, "load_dataset", missing_seed_2)
    assert bench(tmp_path, *SMALL) == 2
    error = capsys.readouterr().err
    assert "expected the files under /data/seed-2" in error
    assert f"after fixing this: spikemax-bench {' '.join(SMALL)} --out {tmp_path} --resume" in error
    assert len(list((tmp_path / "cells").glob("train.*.json"))) == 6  # the first loss's sweep


# ------------------------------------------------------------------------------------------ rank 0 only


def test_a_store_that_does_not_write_leaves_no_file(tmp_path):
    out = tmp_path / "out"
    store = RunStore.prepare(out, run_key={"config": {}}, writer=False)
    store.begin()
    store.put("train.x", {"seed": 0})
    store.save_weights("train.x", {"weight": torch.ones(2)})
    assert store.publish({"records": []}, lambda document, folder: iter(())) == []
    assert not out.exists()


def test_prepare_names_every_difference_of_the_run_key(tmp_path):
    key = {"config": {"epochs": 8, "seeds": 1}, "packages": {"torch": "2.13.0"}}
    store = RunStore.prepare(tmp_path, run_key=key)
    store.begin()
    changed = {"config": {"epochs": 8, "seeds": 3}, "packages": {"torch": "2.14.0"}}
    with pytest.raises(OutputError) as error:
        RunStore.prepare(tmp_path, run_key=changed, resume=True, describe=describe_key)
    assert "--seeds: the interrupted run used 1, this command 3" in str(error.value)
    assert "the installed version of torch: the interrupted run used '2.13.0', this command '2.14.0'" in str(
        error.value
    )
    shutil.rmtree(tmp_path / "cells")
