"""The Norse before/after programs on docs/migration.md run, learn, and differ by the four marked edits only."""

from __future__ import annotations

import difflib
import importlib
import math
import re
import sys
from pathlib import Path

import pytest
import torch

CODE = Path(__file__).resolve().parents[2] / "docs" / "tutorials" / "code"
BEFORE, AFTER = "norse_voltage_readout", "norse_spike_readout"
PAGE = Path(__file__).resolve().parents[2] / "docs" / "migration.md"


@pytest.fixture
def program(monkeypatch):
    """Imports a program from docs/tutorials/code the way ``python <file>`` would find its neighbours.

    The networks are tiny: one torch thread runs them fastest, and several threads spin-wait badly on a busy
    machine (about 6 s per program with one thread, up to ten times that with two on a loaded 2-core machine).
    """
    pytest.importorskip("norse")
    monkeypatch.syspath_prepend(str(CODE))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    loaded = []

    def load(name: str):
        loaded.append(name)
        return importlib.import_module(name)

    yield load
    torch.set_num_threads(threads)
    for name in [*loaded, "norse_readout_data"]:
        sys.modules.pop(name, None)


@pytest.mark.slow
def test_before_norse_voltage_readout_learns_as_norses_own_does(program):
    module = program(BEFORE)
    results = module.main()
    losses, accuracies, chance = results["mean_losses"], results["accuracies"], results["chance"]
    assert len(losses) == len(accuracies) == module.EPOCHS == 8
    assert losses[0] > math.log(4) - 0.05, results  # log_softmax of near-equal voltages: about log C at first
    assert losses[-1] < losses[0] / 4, results
    assert accuracies[-1] >= chance + 50, results


@pytest.mark.slow
def test_after_spikemax_readout_learns_from_a_silent_start(program):
    module = program(AFTER)
    results = module.main()
    losses, accuracies, chance = results["mean_losses"], results["accuracies"], results["chance"]
    assert len(losses) == len(accuracies) == 8
    # the LIF readout starts silent: loss log C (smoothing 1), no decision (-1) for every sample
    assert losses[0] == pytest.approx(math.log(4), abs=0.01), results
    assert accuracies[0] < chance, results
    assert losses[-1] < losses[0] / 4, results
    assert accuracies[-1] >= chance + 50, results


@pytest.mark.slow
def test_after_program_outputs_spikes_and_before_outputs_log_probabilities(program):
    before, after = program(BEFORE), program(AFTER)
    inputs = before.make_dataset(4, torch.Generator().manual_seed(0)).tensors[0]
    torch.manual_seed(0)
    log_p = before.Model(
        before.ConstantCurrentLIFEncoder(seq_length=before.T),
        before.SNN(before.INPUT_FEATURES, before.HIDDEN_FEATURES, before.OUTPUT_FEATURES),
        before.decode,
    )(inputs)
    assert log_p.shape == (4, 4)
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(4))
    spikes = after.Model(
        after.ConstantCurrentLIFEncoder(seq_length=after.T),
        after.SNN(after.INPUT_FEATURES, after.HIDDEN_FEATURES, after.OUTPUT_FEATURES),
        after.decode,
    )(inputs)
    assert spikes.shape == (after.T, 4, 4)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


def code_lines(name: str) -> list[str]:
    """The program's lines after its module docstring."""
    text = (CODE / f"{name}.py").read_text(encoding="utf-8")
    docstring_end = text.index('"""', 3) + 3
    return text[docstring_end:].splitlines()


RENAMES = {r"\bvoltages\b": "spikes", r"\bvo\b": "zo", r"\blog_p_y\b": "spikes"}


def test_the_two_programs_differ_only_by_the_marked_edits_and_renames():
    before = code_lines(BEFORE)
    for pattern, name in RENAMES.items():
        before = [re.sub(pattern, name, line) for line in before]
    after = code_lines(AFTER)
    added = [line[1:] for line in difflib.unified_diff(before, after, lineterm="", n=0) if line[:1] == "+"]
    added = [line for line in added[1:] if line.strip()]  # drop the "+++" header and blank lines
    unmarked = [line for line in added if not re.search(r"# .*SpikeMax \([1-4]\)", line)]
    assert not unmarked, f"changed lines without a '# SpikeMax (n)' mark: {unmarked}"
    marks = {int(number) for line in added for number in re.findall(r"SpikeMax \(([1-4])\)", line)}
    assert marks == {1, 2, 3, 4}


def test_the_page_includes_both_programs_and_their_data():
    page = PAGE.read_text(encoding="utf-8")
    for name in (BEFORE, AFTER, "norse_readout_data"):
        assert f'--8<-- "docs/tutorials/code/{name}.py"' in page
