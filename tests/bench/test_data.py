"""The benchmark's datasets: shapes, splits, determinism, caching, physics of the emulated camera, rate
coding statistics, and the recorded sets read through tonic's real code from files in their real formats."""

from __future__ import annotations

import ast
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import spikemax_plugins
from spikemax_plugins.bench.data import (
    DATASET_NAMES,
    DEFAULT_TIME_STEPS,
    DatasetNotFoundError,
    SpikeDataset,
    collate_time_first,
    load_dataset,
)
from spikemax_plugins.bench.data import digits_dvs as digits_dvs_module
from spikemax_plugins.bench.data.digits_dvs import emulate_saccade_events, save_sample_figure

from .fixtures import (
    write_dvsgesture_fixture,
    write_nmnist_fixture,
    write_ntidigits18_fixture,
    write_shd_fixture,
)

RATE_SETS = {"digits-rate": (64, 10, 1797), "uci-iris": (4, 3, 150), "uci-wine": (13, 3, 178),
             "uci-breast-cancer": (30, 2, 569)}  # fmt: skip


def all_items(split) -> tuple[torch.Tensor, torch.Tensor]:
    frames, labels = collate_time_first([split[index] for index in range(len(split))])
    return frames, labels


def assert_stratified(dataset: SpikeDataset, labels_of_source: np.ndarray) -> None:
    """Each split holds every class in proportion to the whole (within one sample a class)."""
    total = len(dataset.train) + len(dataset.validation) + len(dataset.test)
    class_totals = np.bincount(labels_of_source, minlength=dataset.num_classes)
    for split in (dataset.train, dataset.validation, dataset.test):
        counts = np.bincount(split.labels.numpy(), minlength=dataset.num_classes)
        np.testing.assert_allclose(counts, class_totals * len(split) / total, atol=1.5)


# ----------------------------------------------------------------------------------------- the interface


def test_unknown_name_lists_every_dataset():
    with pytest.raises(ValueError, match="mnist-color") as error:
        load_dataset("mnist-color")
    assert all(name in str(error.value) for name in DATASET_NAMES)


@pytest.mark.parametrize("time_steps", [0, -3, 2.5, True])
def test_invalid_time_steps_is_rejected(time_steps):
    with pytest.raises(ValueError, match="time_steps"):
        load_dataset("uci-iris", time_steps=time_steps)


def test_collate_stacks_time_first():
    batch = [(torch.ones(4, 3), 1), (torch.zeros(4, 3), 2)]
    frames, labels = collate_time_first(batch)
    assert frames.shape == (4, 2, 3) and frames.dtype == torch.float32
    assert labels.tolist() == [1, 2] and labels.dtype == torch.int64
    assert frames[:, 0].sum() == 12 and frames[:, 1].sum() == 0
    with pytest.raises(ValueError, match=r"item 1 has \(5, 3\)"):
        collate_time_first([(torch.ones(4, 3), 0), (torch.ones(5, 3), 0)])


def test_optional_dependencies_are_imported_inside_functions_only():
    """The core package (and bench.data itself) must import without the bench extra installed."""
    package = Path(spikemax_plugins.__file__).parent
    optional = {"tonic", "sklearn", "matplotlib", "h5py", "rich"}
    for path in [*package.glob("*.py"), *(package / "bench" / "data").glob("*.py")]:
        for node in ast.parse(path.read_text()).body:  # module level only: imports inside functions are lazy
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not {name.split(".")[0] for name in names} & optional, (path.name, names)


# ------------------------------------------------------------------------------------------- digits-dvs


@pytest.fixture(scope="module")
def digits_dvs_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def digits_dvs(digits_dvs_cache) -> SpikeDataset:
    return load_dataset("digits-dvs", cache_dir=digits_dvs_cache)


def test_digits_dvs_shapes_values_and_splits(digits_dvs):
    assert (digits_dvs.kind, digits_dvs.input_shape, digits_dvs.time_steps) == ("events", (2, 22, 22), 30)
    assert (len(digits_dvs.train), len(digits_dvs.validation), len(digits_dvs.test)) == (1151, 287, 359)
    frames, label = digits_dvs.train[0]
    assert frames.shape == (30, 2, 22, 22) and frames.dtype == torch.float32 and isinstance(label, int)
    stored = torch.cat([split.frames for split in (digits_dvs.train, digits_dvs.validation, digits_dvs.test)])
    assert stored.max() == 1  # uint8 cells: binary (sorting 52 M cells for unique() would be slow)
    sources = torch.cat([s.source_indices for s in (digits_dvs.train, digits_dvs.validation, digits_dvs.test)])
    assert sorted(sources.tolist()) == list(range(1797))  # disjoint and complete
    from sklearn.datasets import load_digits

    assert_stratified(digits_dvs, load_digits().target)
    events_per_sample = stored.flatten(1).sum(1).float()
    assert 1500 < events_per_sample.mean() < 3500, events_per_sample.mean()


def test_digits_dvs_is_deterministic_and_its_test_split_ignores_the_seed(digits_dvs, digits_dvs_cache):
    other_seed = load_dataset("digits-dvs", seed=1, cache_dir=digits_dvs_cache)
    assert torch.equal(other_seed.test.source_indices, digits_dvs.test.source_indices)
    assert torch.equal(other_seed.test.frames, digits_dvs.test.frames)
    assert not torch.equal(other_seed.validation.source_indices, digits_dvs.validation.source_indices)
    # quick=True emulates its samples afresh (no cache): the same samples must come out bit for bit.
    quick = load_dataset("digits-dvs", quick=True, cache_dir=digits_dvs_cache)
    assert (len(quick.train), len(quick.validation), len(quick.test)) == (64, 32, 32)
    full_rows = {int(source): row for row, source in enumerate(digits_dvs.test.source_indices)}
    for row, source in enumerate(quick.test.source_indices.tolist()):
        assert torch.equal(quick.test.frames[row], digits_dvs.test.frames[full_rows[source]])


def test_digits_dvs_cache_is_reused(digits_dvs, digits_dvs_cache):
    (cache_file,) = digits_dvs_cache.glob("digits-dvs-*.npz")
    assert cache_file.stat().st_size < 8_000_000  # bit-packed: 1797 x 29,040 cells in ~6.5 MB
    start = time.perf_counter()
    again = load_dataset("digits-dvs", cache_dir=digits_dvs_cache)
    assert time.perf_counter() - start < 2.0
    assert torch.equal(again.train.frames, digits_dvs.train.frames)
    assert torch.equal(again.test.frames, digits_dvs.test.frames)


def test_a_corrupt_digits_dvs_cache_is_rebuilt(tmp_path, monkeypatch):
    images, labels = digits_dvs_module._digit_images()
    # 150 digits instead of 1,797 keep this test fast; the cache key includes the images, so no clash.
    monkeypatch.setattr(digits_dvs_module, "_digit_images", lambda: (images[:150], labels[:150]))
    built = load_dataset("digits-dvs", cache_dir=tmp_path)
    assert len(built.train) + len(built.validation) + len(built.test) == 150
    (cache_file,) = tmp_path.glob("digits-dvs-*.npz")
    cache_file.write_bytes(cache_file.read_bytes()[:1000])  # truncated, as by a full disk
    with pytest.warns(UserWarning, match="unreadable cache file"):
        rebuilt = load_dataset("digits-dvs", cache_dir=tmp_path)
    assert torch.equal(rebuilt.test.frames, built.test.frames)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten cache reads cleanly
        assert torch.equal(load_dataset("digits-dvs", cache_dir=tmp_path).train.frames, built.train.frames)
    cache_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        assert torch.equal(load_dataset("digits-dvs", cache_dir=tmp_path).train.frames, built.train.frames)


def test_a_blank_screen_gives_no_events_and_noise_stays_rare():
    blank = torch.zeros(4, 8, 8)
    assert emulate_saccade_events(blank, background_rate_hz=0).sum() == 0
    noise_only = emulate_saccade_events(blank).flatten(1).sum(1)
    assert noise_only.float().mean() < 100  # 0.2 Hz x 0.3 s x 968 pixel-polarities ~ 58
    uniform_field = emulate_saccade_events(torch.full((1, 8, 8), 0.5), background_rate_hz=0)
    # The 16x16 patch's border moves, so events occur; its interior stays uniform and silent throughout.
    assert uniform_field[0, :, :, 10:12, 10:12].sum() == 0 and uniform_field.sum() > 0


def test_events_follow_edges_across_the_motion():
    """A horizontal bar during saccade 3 (a purely leftward motion): its long edges slide along
    themselves and stay silent, its two ends fire; the leading (left) end brightens -> ON, the trailing
    (right) end darkens -> OFF."""
    bar = torch.zeros(1, 8, 8)
    bar[0, 3:5, :] = 1.0
    frames = emulate_saccade_events(bar, time_steps=30, background_rate_hz=0)[0]
    third_saccade = frames[20:30]  # [10, 2, 22, 22]
    on_columns = third_saccade[:, 0].sum(dim=(0, 1))
    off_columns = third_saccade[:, 1].sum(dim=(0, 1))
    assert on_columns[7:15].sum() == 0 and off_columns[7:15].sum() == 0  # the bar's middle
    assert on_columns[:7].sum() > 0 and on_columns[15:].sum() == 0
    assert off_columns[15:].sum() > 0 and off_columns[:7].sum() == 0
    first_saccade = frames[:10]  # moving down and right: the bar's top edge now darkens, its bottom brightens
    assert first_saccade[:, 0].sum() > 0 and first_saccade[:, 1].sum() > 0


def test_sample_figure_is_written(tmp_path, digits_dvs_cache):
    quick = load_dataset("digits-dvs", quick=True, cache_dir=digits_dvs_cache)
    path = save_sample_figure(quick, tmp_path / "figures" / "samples.png", n=3)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="'events' dataset"):
        save_sample_figure(load_dataset("uci-iris"), tmp_path / "x.png")


# ----------------------------------------------------------------------------------------- rate-coded


@pytest.mark.parametrize("name", list(RATE_SETS))
def test_rate_coded_sets(name):
    num_features, num_classes, num_samples = RATE_SETS[name]
    dataset = load_dataset(name, seed=3)
    assert (dataset.kind, dataset.input_shape, dataset.num_classes) == ("channels", (num_features,), num_classes)
    assert dataset.time_steps == DEFAULT_TIME_STEPS[name] == 10
    frames, labels = all_items(dataset.test)
    assert frames.shape == (10, len(dataset.test), num_features) and set(frames.unique().tolist()) <= {0.0, 1.0}
    assert set(labels.tolist()) == set(range(num_classes))
    sources = torch.cat([s.source_indices for s in (dataset.train, dataset.validation, dataset.test)])
    assert sorted(sources.tolist()) == list(range(num_samples))
    assert abs(len(dataset.test) - 0.2 * num_samples) <= num_classes
    again = load_dataset(name, seed=3)
    assert torch.equal(again.train.frames, dataset.train.frames)
    assert torch.equal(load_dataset(name, seed=4).test.source_indices, dataset.test.source_indices)
    quick = load_dataset(name, quick=True)
    assert len(quick.train) <= 64 and len(quick.validation) <= 32 and len(quick.test) <= 32


def test_rate_coding_fires_at_the_training_split_scaled_feature():
    from sklearn.datasets import load_breast_cancer

    features = load_breast_cancer().data
    time_steps = 200
    dataset = load_dataset("uci-breast-cancer", time_steps=time_steps, seed=0)

    def scaled(rows: np.ndarray) -> np.ndarray:
        minimum, maximum = features[rows].min(0), features[rows].max(0)
        return np.clip((features - minimum) / (maximum - minimum), 0.0, 1.0)

    train_rows = dataset.train.source_indices.numpy()
    not_test_rows = np.concatenate([train_rows, dataset.validation.source_indices.numpy()])
    for split in (dataset.train, dataset.validation, dataset.test):
        rates = split.frames.double().mean(dim=1).numpy()  # [N, F]
        sources = split.source_indices.numpy()
        expected = scaled(train_rows)[sources]
        # 5 binomial standard deviations, plus 3 spikes for the skewed tails of probabilities near 0 or 1.
        bound = 5 * np.sqrt(expected * (1 - expected) / time_steps) + 3 / time_steps
        assert np.all(np.abs(rates - expected) <= bound)
        if split is dataset.test:  # scaling with the whole data, or with validation too, is detectably off
            for leaky_rows in (np.arange(len(features)), not_test_rows):
                assert np.any(np.abs(rates - scaled(leaky_rows)[sources]) > bound)


# ------------------------------------------------------------------------------- recorded, through tonic

# name -> (writer, input_shape, classes, (train, validation, test) sizes, cells every recording fires:
# (time step, *position) after binning; the cell naming the label is checked separately).
RECORDED = {
    "nmnist": (write_nmnist_fixture, (2, 34, 34), 10, (20, 10, 20), [(15, 0, 30, 20), (29, 1, 33, 33)]),
    "dvsgesture": (write_dvsgesture_fixture, (2, 32, 32), 11, (11, 11, 11), [(10, 0, 31, 31), (19, 1, 0, 16)]),
    "ntidigits18": (write_ntidigits18_fixture, (64,), 11, (22, 11, 22), [(25, 40), (49, 63)]),
    "shd": (write_shd_fixture, (700,), 20, (40, 20, 40), [(25, 40), (49, 63)]),
}


def label_cell_count(name: str, frames: torch.Tensor, label: int) -> float:
    """Events in the first frame at the position the fixture derives from the label."""
    if name == "nmnist":  # x = 2 + label, y = 5 + sample number, ON
        return float(frames[0, 1, 5:8, 2 + label].sum())
    if name == "dvsgesture":  # x = 4 * label + 1 pooled by 4 -> label; y = 8 -> 2; ON
        return float(frames[0, 1, 2, label])
    return float(frames[0, label])  # audio: channel = label


@pytest.mark.parametrize("name", list(RECORDED))
def test_recorded_set_is_read_through_tonic_into_the_expected_cells(name, tmp_path):
    writer, input_shape, num_classes, sizes, fixed_cells = RECORDED[name]
    dataset = load_dataset(name, data_dir=writer(tmp_path), seed=0)
    assert (dataset.input_shape, dataset.num_classes, dataset.time_steps) == (
        input_shape, num_classes, DEFAULT_TIME_STEPS[name])  # fmt: skip
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == sizes
    assert dataset.kind == ("events" if len(input_shape) == 3 else "channels")
    assert len(dataset.class_names) == num_classes
    for split in (dataset.train, dataset.validation, dataset.test):
        frames, labels = all_items(split)  # [T, B, ...]
        assert frames.shape == (dataset.time_steps, len(split), *input_shape) and frames.dtype == torch.float32
        assert torch.equal(labels, split.labels)
        assert set(labels.tolist()) == set(range(num_classes))  # every split holds every class
        for sample, label in enumerate(labels.tolist()):
            sample_frames = frames[:, sample]
            # Four events were written; tonic's n_time_bins binning leaves the one at the very end out.
            assert sample_frames.sum() == 3
            assert label_cell_count(name, sample_frames, label) == 1
            for cell in fixed_cells:
                assert sample_frames[cell] == 1, (name, sample, cell)
    other_seed = load_dataset(name, data_dir=tmp_path, seed=5)
    assert torch.equal(other_seed.test.source_indices, dataset.test.source_indices)
    repeat = load_dataset(name, data_dir=tmp_path, seed=0)
    assert torch.equal(repeat.validation.source_indices, dataset.validation.source_indices)


def test_single_digit_mode_skips_multi_digit_recordings(tmp_path):
    dataset = load_dataset("ntidigits18", data_dir=write_ntidigits18_fixture(tmp_path))
    assert len(dataset.train) + len(dataset.validation) == 33  # 34 recordings, one of them "1o2"


def test_quick_subsets_of_a_recorded_set(tmp_path):
    dataset = load_dataset("shd", data_dir=write_shd_fixture(tmp_path), quick=True, time_steps=10)
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (40, 20, 32)
    assert dataset.train[0][0].shape == (10, 700)
    assert len(set(dataset.test.labels.tolist())) == 20  # round-robin over classes


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if tonic tries to download anything."""
    import tonic.dataset
    import tonic.datasets

    def refuse(*args, **kwargs):
        raise AssertionError("tonic tried to download")

    monkeypatch.setattr(tonic.dataset.Dataset, "download", refuse)
    monkeypatch.setattr(tonic.datasets.NTIDIGITS18, "download", refuse)


@pytest.mark.parametrize("name", list(RECORDED))
def test_missing_files_name_the_path_and_the_options(name, tmp_path, no_network):
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset(name, data_dir=tmp_path / "empty")
    message = str(error.value)
    folder = {"nmnist": "NMNIST", "dvsgesture": "DVSGesture", "ntidigits18": "NTIDIGITS18", "shd": "SHD"}[name]
    assert str(tmp_path / "empty" / folder) in message
    assert "--download" in message and "--data-dir" in message


def test_a_missing_test_split_is_named(tmp_path, no_network):
    write_nmnist_fixture(tmp_path)
    for path in sorted((tmp_path / "NMNIST" / "Test").rglob("*.bin")):
        path.unlink()
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "NMNIST" / "Test")):
        load_dataset("nmnist", data_dir=tmp_path)


def test_download_is_passed_through_to_tonic(tmp_path, monkeypatch):
    import tonic.dataset

    calls = []

    def fake_download(self):  # stands in for fetching and extracting the archive
        calls.append(self.location_on_system)
        write_nmnist_fixture(Path(self.location_on_system).parent)

    monkeypatch.setattr(tonic.dataset.Dataset, "download", fake_download)
    dataset = load_dataset("nmnist", data_dir=tmp_path, download=True)
    assert calls == [str(tmp_path / "NMNIST")]
    assert len(dataset.test) == 20


def test_corrupt_recordings_raise_clear_errors(tmp_path):
    write_nmnist_fixture(tmp_path)
    truncated = tmp_path / "NMNIST" / "Test" / "0" / "00000.bin"
    truncated.write_bytes(truncated.read_bytes()[:7])
    garbled = tmp_path / "NMNIST" / "Test" / "0" / "00001.bin"
    garbled.write_bytes(b"\xff" * 20)
    dataset = load_dataset("nmnist", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"(?s)00000\.bin.*corrupt.*--download"):
        dataset.test[0]
    with pytest.raises(ValueError, match=r"(?s)00001\.bin.*x coordinates must lie in \[0, 34\)"):
        dataset.test[1]

    write_dvsgesture_fixture(tmp_path)
    (tmp_path / "DVSGesture" / "ibmGestureTest" / "user24_natural" / "0.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match=r"(?s)0\.npy.*corrupt"):
        load_dataset("dvsgesture", data_dir=tmp_path).test[0]

    for name, writer, path in (
        ("shd", write_shd_fixture, tmp_path / "SHD" / "shd_test.h5"),
        ("ntidigits18", write_ntidigits18_fixture, tmp_path / "NTIDIGITS18" / "n-tidigits.hdf5"),
    ):
        writer(tmp_path)
        path.write_bytes(b"\x00" * 64)
        with pytest.raises(ValueError, match=rf"(?s){path.name}.*corrupt"):
            load_dataset(name, data_dir=tmp_path)
