"""The cells of a run: one training or one evaluation each, kept in a :class:`~spikemax_bench.store.CellStore`.

A **training cell** trains one network (framework x loss x candidate x seed) and stores its curves and final
validation accuracy, and the network's weights while it may still have to be evaluated. An **evaluation cell**
measures one trained network with :func:`~spikemax_bench.evaluate.evaluate_trained` and stores what it returns.
A cell already in the store is read back, not computed again (``--resume``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import Any, Protocol

import torch

from . import distributed
from .config import BenchConfig
from .data import ProgressTask, SpikeDataset, silent_progress
from .evaluate import evaluate_trained
from .loaders import make_loader, training_loader
from .models import SpikingNetwork, build_network
from .store import CellStore
from .sweep import Candidate, describe_candidate, make_loss, sweep_grid
from .train import train_network

__all__ = ["CellRunner", "Monitor", "SilentMonitor", "evaluation_key", "planned_trainings", "training_key"]


class Monitor(Protocol):
    """What :func:`~spikemax_bench.run.run_benchmark` reports to: the plan, one progress task per training, one
    line per result."""

    def plan(self, trainings: int, batches: int, finished: int) -> None:
        """``trainings`` trainings of ``batches`` batches in all are still to run; ``finished`` were resumed."""

    def training(self, description: str, batches: int) -> AbstractContextManager[ProgressTask]:
        """A context manager around one training; its value is advanced once per batch."""

    def note(self, message: str) -> None:
        """One line of news (a finished training, a choice)."""


class SilentMonitor:
    """A :class:`Monitor` that shows nothing."""

    def plan(self, trainings: int, batches: int, finished: int) -> None:
        pass

    def training(self, description: str, batches: int) -> AbstractContextManager[ProgressTask]:
        return silent_progress(description, batches)

    def note(self, message: str) -> None:
        pass


def _penalty_suffix(activity_penalty: float) -> str:
    # Without a regulariser the names stay those of runs made before it existed (so they resume).
    return "" if activity_penalty == 0 else f".p{activity_penalty!r}"


def training_key(framework: str, loss_name: str, candidate: int, seed: int, activity_penalty: float = 0.0) -> str:
    """Name of a training cell in the store."""
    return f"train.{framework}.{loss_name}.c{candidate}.s{seed}{_penalty_suffix(activity_penalty)}"


def evaluation_key(framework: str, loss_name: str, seed: int, activity_penalty: float = 0.0) -> str:
    """Name of an evaluation cell in the store."""
    return f"evaluate.{framework}.{loss_name}.s{seed}{_penalty_suffix(activity_penalty)}"


def planned_trainings(config: BenchConfig, time_steps: int, store: CellStore) -> tuple[int, int]:
    """(trainings still to run, trainings already in ``store``) for ``config``.

    Sweep trainings are every candidate x sweep seed (at the first activity penalty); test trainings are the
    seeds the sweep did not train (all of them without a sweep), and every seed at each further activity
    penalty. A test training counts as finished when any candidate's cell exists for its seed (the chosen one is
    not known before the sweep is).
    """
    pending = finished = 0
    first_penalty, *other_penalties = config.activity_penalties
    for framework in config.frameworks:
        for loss_name in config.losses:
            grid = sweep_grid(loss_name, time_steps, config.learning_rates, sweep=config.sweep)
            sweep_seeds = config.sweep_seeds if len(grid) > 1 else 0  # one candidate: nothing to choose
            keys = [
                training_key(framework, loss_name, c, s, first_penalty)
                for s in range(sweep_seeds)
                for c in range(len(grid))
            ]
            for key in keys:
                done = store.get(key) is not None
                pending, finished = pending + (not done), finished + done
            tests = [(seed, first_penalty) for seed in range(sweep_seeds, config.seeds)]
            tests += [(seed, penalty) for penalty in other_penalties for seed in range(config.seeds)]
            for seed, penalty in tests:
                done = any(store.get(training_key(framework, loss_name, c, seed, penalty)) for c in range(len(grid)))
                pending, finished = pending + (not done), finished + done
    return pending, finished


class CellRunner:
    """Runs (or reads back) the cells of one benchmark run."""

    def __init__(
        self,
        config: BenchConfig,
        dataset_for_seed: Callable[[int], SpikeDataset],
        store: CellStore,
        monitor: Monitor,
    ) -> None:
        self.config = config
        self.dataset_for_seed = dataset_for_seed
        self.store = store
        self.monitor = monitor
        self.device = torch.device(config.device)

    def _network(self, framework: str, dataset: SpikeDataset, seed: int) -> SpikingNetwork:
        return build_network(
            framework,
            architecture=self.config.architecture,  # type: ignore[arg-type]
            input_shape=dataset.input_shape,
            num_classes=dataset.num_classes,
            hidden_size=self.config.hidden_size,
            seed=seed,
        ).to(self.device)

    def train(
        self,
        framework: str,
        loss_name: str,
        index: int,
        candidate: Candidate,
        seed: int,
        activity_penalty: float = 0.0,
    ) -> dict[str, Any]:
        """The training cell's record: ``framework``, ``loss``, ``candidate``, ``hyper_parameters``,
        ``learning_rate``, ``seed``, ``curves``, ``validation_correct``, ``validation_samples``,
        ``final_train_loss``, ``seconds_per_epoch`` (and ``activity_penalty`` when it is not 0). Trains unless the
        store has it."""
        key = training_key(framework, loss_name, index, seed, activity_penalty)
        record = self.store.get(key)
        needs_weights = (
            seed < self.config.seeds
            and self.store.get(evaluation_key(framework, loss_name, seed, activity_penalty)) is None
        )
        if record is not None and (self.store.has_weights(key) or not needs_weights):
            return record
        # Not stored, or stored without the weights its evaluation still needs: train (deterministic per seed).
        dataset = self.dataset_for_seed(seed)
        network = self._network(framework, dataset, seed)
        train_loader = training_loader(dataset.train, self.config.batch_size, seed=seed)
        validation_loader = make_loader(
            distributed.shard(dataset.validation), self.config.batch_size, shuffle=False, seed=seed
        )
        # Name the learning rate only when the run chooses among several.
        learning_rates = self.config.learning_rates if self.config.sweep else self.config.learning_rates[:1]
        description = f"{framework} {loss_name} {describe_candidate(candidate, learning_rates)} seed {seed}"
        if activity_penalty:
            description += f" λ={activity_penalty:g}"
        with self.monitor.training(description, self.config.epochs * len(train_loader)) as task:
            curves, (correct, samples) = train_network(
                network,
                make_loss(framework, loss_name, candidate.hyper_parameters),
                train_loader,
                validation_loader,
                activity_penalty=activity_penalty,
                epochs=self.config.epochs,
                learning_rate=candidate.learning_rate,
                device=self.device,
                task=task,
            )
        record = {
            "framework": framework,
            "loss": loss_name,
            "candidate": index,
            "hyper_parameters": candidate.hyper_parameters,
            "learning_rate": candidate.learning_rate,
            "seed": seed,
            "curves": asdict(curves),
            "validation_correct": correct,
            "validation_samples": samples,
            "final_train_loss": curves.train_loss[-1],
            "seconds_per_epoch": statistics.fmean(curves.epoch_seconds),
            **({"activity_penalty": activity_penalty} if activity_penalty else {}),
        }
        if needs_weights:
            self.store.save_weights(key, network.state_dict())  # before the record: a record implies its weights
        self.store.put(key, record)
        self.monitor.note(
            f"{description}: validation accuracy {correct / samples:.3f}, {record['seconds_per_epoch']:.1f} s/epoch"
        )
        return record

    def evaluate(
        self, framework: str, loss_name: str, index: int, seed: int, activity_penalty: float = 0.0
    ) -> dict[str, Any]:
        """The evaluation cell's record (:func:`evaluate_trained` of the trained network of candidate ``index``)."""
        key = evaluation_key(framework, loss_name, seed, activity_penalty)
        weights = training_key(framework, loss_name, index, seed, activity_penalty)
        record = self.store.get(key)
        if record is None:
            dataset = self.dataset_for_seed(seed)
            network = self._network(framework, dataset, seed)
            # Always from the stored weights, so a resumed run measures exactly what an uninterrupted one does.
            network.load_state_dict(self.store.load_weights(weights))
            record = {
                "candidate": index,
                **evaluate_trained(network, dataset, batch_size=self.config.batch_size, device=self.device),
            }
            self.store.put(key, record)
        self.store.drop_weights(weights)
        return record
