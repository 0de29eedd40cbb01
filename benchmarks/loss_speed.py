"""Forward + backward time and memory of the SpikeMax losses, printed as ratios measured in one run.

    python benchmarks/loss_speed.py [--device cpu|cuda] [--repeats 30]

Targets (issue 3): spikemax_g <= 1.0x snnTorch's ce_count_loss; spikemax_s with window T/2 <= 1.5x window 2.
Memory is the bytes autograd saves for the backward pass (any device), plus the CUDA peak on a GPU.
snnTorch is optional: without it, only our own losses are timed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import spikemax_plugins as smx

SHAPES = [(300, 128, 10), (100, 64, 1000)]  # (T, B, C)


def saved_tensor_bytes(loss_fn: Callable, spikes: torch.Tensor, target: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward (distinct storages), excluding the input itself."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() != spikes.untyped_storage().data_ptr():
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss_fn(spikes, target)
    return sum(storages.values())


def time_forward_backward(loss_fn: Callable, spikes: torch.Tensor, target: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward + backward pass."""

    def once() -> None:
        spikes.grad = None
        loss_fn(spikes, target).backward()

    for _ in range(3):
        once()
    samples = []
    for _ in range(repeats):
        if spikes.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        once()
        if spikes.is_cuda:
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def cuda_peak_bytes(loss_fn: Callable, spikes: torch.Tensor, target: torch.Tensor) -> int | None:
    if not spikes.is_cuda:
        return None
    spikes.grad = None
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    loss_fn(spikes, target).backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - baseline


def contenders(num_steps: int) -> dict[str, Callable]:
    losses: dict[str, Callable] = {
        "spikemax_g": smx.spikemax_g,
        "spikemax_g softmax": lambda s, y: smx.spikemax_g(s, y, mode="softmax"),
        "mse_count": lambda s, y: smx.mse_count(s, y, true_rate=0.8, false_rate=0.1),
        "spikemax_s window 2": lambda s, y: smx.spikemax_s(s, y, window=2),
        f"spikemax_s window {num_steps // 2}": lambda s, y: smx.spikemax_s(s, y, window=num_steps // 2),
    }
    try:
        import snntorch.functional as SF
    except ImportError:
        return losses
    losses["snntorch ce_count_loss"] = SF.ce_count_loss()
    losses["snntorch mse_count_loss"] = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.1)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, median of {args.repeats}")
    for num_steps, batch_size, classes in SHAPES:
        generator = torch.Generator().manual_seed(0)
        spikes = (torch.rand(num_steps, batch_size, classes, generator=generator) < 0.2).float().to(device)
        spikes.requires_grad_()
        target = torch.randint(0, classes, (batch_size,), generator=generator).to(device)
        print(f"\nT={num_steps}, B={batch_size}, C={classes}")
        print(f"{'loss':<28}{'fwd+bwd ms':>12}{'saved MiB':>12}{'CUDA peak MiB':>15}")
        times = {}
        for name, loss_fn in contenders(num_steps).items():
            times[name] = time_forward_backward(loss_fn, spikes, target, args.repeats)
            saved = saved_tensor_bytes(loss_fn, spikes, target) / 2**20
            peak = cuda_peak_bytes(loss_fn, spikes, target)
            peak_text = "-" if peak is None else f"{peak / 2**20:.2f}"
            print(f"{name:<28}{times[name] * 1e3:>12.3f}{saved:>12.3f}{peak_text:>15}")
        window_ratio = times[f"spikemax_s window {num_steps // 2}"] / times["spikemax_s window 2"]
        print(f"ratio spikemax_s window {num_steps // 2} / window 2: {window_ratio:.2f}x (target <= 1.5x)")
        for baseline in ("snntorch ce_count_loss", "snntorch mse_count_loss"):
            if baseline in times:
                target_note = " (target <= 1.0x)" if baseline.endswith("ce_count_loss") else ""
                print(f"ratio spikemax_g / {baseline}: {times['spikemax_g'] / times[baseline]:.2f}x{target_note}")


if __name__ == "__main__":
    main()
