"""Progress of a run: rich bars on a terminal (an overall bar, run k of N, one bar per training and per data
build); elsewhere (CI logs, pipes) one plain line per training, with elapsed and estimated remaining time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..data import ProgressTask, silent_progress

__all__ = ["ProgressDisplay"]


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


class _RemainingColumn(ProgressColumn):
    """Time left at the average speed so far (rich's own column averages only the last 30 s)."""

    def render(self, task: Task) -> Text:
        if not task.completed or task.total is None or task.elapsed is None:
            return Text("-:--:-- left", style="progress.remaining")
        remaining = task.elapsed / task.completed * (task.total - task.completed)
        return Text(f"{_clock(remaining)} left", style="progress.remaining")


class _BarTask:
    """One bar of a rich Progress, as a :class:`~spikemax_bench.data.ProgressTask`."""

    def __init__(self, progress: Progress, task_id: Any) -> None:
        self._progress = progress
        self._task_id = task_id

    def advance(self, amount: int = 1) -> None:
        self._progress.advance(self._task_id, amount)


class _Training:
    """The task of one training: advances its own bar and the overall one."""

    def __init__(self, display: ProgressDisplay, task_id: Any) -> None:
        self._display = display
        self._task_id = task_id

    def advance(self, amount: int = 1) -> None:
        self._display._advance(self._task_id, amount)


class ProgressDisplay:
    """Progress on a terminal (an overall bar, run k of N, above one bar per training and per data build);
    elsewhere (CI logs, pipes) one plain line per training, with elapsed and estimated remaining time.

    It is the :class:`~spikemax_bench.cells.Monitor` of the run, and :meth:`task` is the data loaders'
    progress hook. Use as a context manager around the work.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        if console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                _RemainingColumn(),
                console=console,
            )
        self._overall: Any = None
        self._trainings = 0
        self._index = 0
        self._batches = 0
        self._batches_done = 0
        self._started = time.perf_counter()

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def plan(self, trainings: int, batches: int, finished: int) -> None:
        """Start the overall count: ``trainings`` of ``batches`` batches in all; ``finished`` resumed ones."""
        self._trainings, self._batches, self._index, self._batches_done = trainings, batches, 0, 0
        self._started = time.perf_counter()
        if finished:
            self.note(f"resuming: {finished} training(s) already finished, {trainings} to go")
        if self._progress is not None:
            self._overall = self._progress.add_task(f"run 0 of {trainings}", total=max(batches, 1))

    def _remaining(self) -> str:
        if not self._batches_done:
            return "unknown"
        elapsed = time.perf_counter() - self._started
        return _clock(elapsed / self._batches_done * (self._batches - self._batches_done))

    def _advance(self, task_id: Any, amount: int) -> None:
        self._batches_done += amount
        if self._progress is not None:
            self._progress.advance(task_id, amount)
            if self._overall is not None:
                self._progress.advance(self._overall, amount)

    @contextlib.contextmanager
    def training(self, description: str, batches: int) -> Iterator[ProgressTask]:
        """One training's progress task (advanced per batch); it also moves the overall bar."""
        self._index += 1
        header = f"run {self._index} of {self._trainings}"
        if self._progress is None:
            elapsed = _clock(time.perf_counter() - self._started)
            self.console.print(
                f"[{header}] {description} (elapsed {elapsed}, about {self._remaining()} left)",
                highlight=False,
                markup=False,
                soft_wrap=True,  # one line per event in a log, however long
            )
            yield _Training(self, None)
            return
        if self._overall is not None:
            self._progress.update(self._overall, description=header)
        task_id = self._progress.add_task(f"  {description}", total=batches)
        try:
            yield _Training(self, task_id)
        finally:
            self._progress.remove_task(task_id)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Any]:
        """A task of ``total`` steps (building data); the bar disappears when it is done."""
        if self._progress is None:
            self.console.print(f"... {description}", highlight=False, markup=False, soft_wrap=True)
            with silent_progress(description, total) as task:
                yield task
            return
        task_id = self._progress.add_task(description, total=total)
        try:
            yield _BarTask(self._progress, task_id)
        finally:
            self._progress.remove_task(task_id)

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False, soft_wrap=True)
