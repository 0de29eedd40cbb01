"""Provenance: results.json says which code, packages, command, machine and time produced it, and collecting
that never fails a run (no git, no checkout)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import metadata

import pytest
import torch

from spikemax_bench import cli, provenance

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def git(folder, *arguments):
    return subprocess.run(["git", "-C", str(folder), *arguments], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def checkout(tmp_path):
    """A fresh git repository with one commit."""
    git(tmp_path, "init", "-q")
    (tmp_path / "module.py").write_text("x = 1\n")
    git(tmp_path, "add", "module.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "one")
    return tmp_path


@needs_git
def test_commit_and_dirty_flag_of_a_checkout(checkout):
    head = git(checkout, "rev-parse", "HEAD").strip()
    assert provenance.git_commit(checkout) == {"commit": head, "dirty": False}
    (checkout / "module.py").write_text("x = 2\n")
    assert provenance.git_commit(checkout) == {"commit": head, "dirty": True}


@needs_git
def test_a_folder_inside_someone_elses_checkout_is_unknown(checkout):
    # An installed package inside a project's .venv must not report the project's commit.
    inner = checkout / ".venv" / "site-packages"
    inner.mkdir(parents=True)
    assert provenance.git_commit(inner) == {"commit": "unknown", "dirty": None}


def test_outside_a_checkout_or_without_git_the_commit_is_unknown(tmp_path, monkeypatch):
    assert provenance.git_commit(tmp_path) == {"commit": "unknown", "dirty": None}

    def no_git(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory: 'git'")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    assert provenance.git_commit() == {"commit": "unknown", "dirty": None}


def test_cpu_name_reads_cpuinfo_and_falls_back_without_it(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Example CPU 3000 @ 2.0GHz\n")
    assert provenance.cpu_name(cpuinfo) == "Example CPU 3000 @ 2.0GHz"
    monkeypatch.setattr(provenance.platform, "processor", lambda: "")
    monkeypatch.setattr(provenance.platform, "machine", lambda: "riscv64")
    assert provenance.cpu_name(tmp_path / "missing") == "riscv64"


def test_source_digest_sees_an_edit(tmp_path, monkeypatch):
    package = tmp_path / "fake_package"
    package.mkdir()
    (package / "__init__.py").write_text("a = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = provenance.source_digest(["fake_package"])
    assert re.fullmatch(r"[0-9a-f]{64}", before)
    (package / "__init__.py").write_text("a = 2\n")
    assert provenance.source_digest(["fake_package"]) != before


def test_results_json_carries_the_provenance_block(tmp_path, monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory: 'git'")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)  # the run must not fail without git
    options = ["--quick", "--dataset", "uci-iris", "--losses", "spikemax_g", "--frameworks", "norse",
               "--threads", "1", "--out", str(tmp_path)]  # fmt: skip
    threads = torch.get_num_threads()
    assert cli.main(options) == 0
    block = json.loads((tmp_path / "results.json").read_text())["provenance"]
    assert block["git"] == {"commit": "unknown", "dirty": None}
    assert block["argv"] == ["spikemax-bench", *options]
    assert block["command"] == "spikemax-bench " + " ".join(options)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", block["started"])
    assert 0 < block["wall_seconds"] < 600
    assert block["world_size"] == 1
    assert block["torch_threads"] == 1 and torch.get_num_threads() == threads
    assert set(block["packages"]) == {"torch", "snntorch", "norse", "spikemax-plugins", "numpy"}
    assert block["packages"]["torch"] == metadata.version("torch")
    assert block["packages"]["spikemax-plugins"] == metadata.version("spikemax-plugins")
    assert block["cpu"] and block["cpu"] != "unknown"
    assert block["gpu"] == (torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    assert re.fullmatch(r"[0-9a-f]{64}", block["source_digest"])
    assert block["resumed_cells"] == 0
