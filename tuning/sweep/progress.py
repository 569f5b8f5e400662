"""Progress of a sweep: one line per trial event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray import tune
from rich.console import Console
from rich.markup import escape
from typing_extensions import override

from tuning.errors import user_frames
from tuning.records.folder import SweepFolder
from tuning.records.ledger import format_params, format_value
from tuning.records.status import Status, ending
from tuning.transient import Transients, transient

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

__all__ = ["ProgressPrinter"]

WORDS = {
    Status.COMPLETE: "[green]complete[/green]",
    Status.PRUNED: "[yellow]pruned[/yellow]  ",
    Status.TIMED_OUT: "[yellow]timed out[/yellow]",
}


class ProgressPrinter(Transients, tune.Callback):
    """Readable in a terminal and in a CI log alike (no cursor tricks)."""

    def __init__(self, metric: str, budget: int, num_samples: int, folder: SweepFolder) -> None:
        self.metric = metric
        self.budget = budget
        self.num_samples = num_samples
        self.folder = folder
        self.errors_shown: dict[str, str] = {}

    @transient
    def console(self) -> Console:
        """The console, made on first use (a Console does not pickle)."""
        return Console(highlight=False, soft_wrap=True)

    @override
    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.console.print(f"[cyan]start[/cyan]    {trial.trial_id}  {escape(format_params(trial.config))}")

    @override
    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        running = sum(t.status == "RUNNING" for t in trials)
        self.console.print(
            f"           {trial.trial_id}  epoch {result.get('epoch')}/{self.budget}  "
            f"{escape(self.metric)} {format_value(result.get(self.metric))}   [dim]({running} running)[/dim]"
        )

    @staticmethod
    def _done(trials: list[Trial], trial: Trial) -> int:
        """Finished trials including `trial` (whose own status may not be updated yet)."""
        return 1 + sum(t.status in ("TERMINATED", "ERROR") for t in trials if t is not trial)

    @override
    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        last = trial.last_result or {}
        end = ending(last, self.budget)
        epochs = last.get("epoch", 0)
        done = f"[dim]({self._done(trials, trial)}/{self.num_samples} done)[/dim]"
        if end.status == Status.DIVERGED:
            self.console.print(f"[magenta]diverged[/magenta] {trial.trial_id}  {escape(str(end.reason))}  {done}")
            return
        value = format_value(last.get(self.metric))
        after = f"{escape(self.metric)} {value} after {epochs} epochs" if epochs else "before its first report"
        if end.status == Status.TIMED_OUT:
            after = f"{after}: {escape(str(end.reason))}"
        self.console.print(f"{WORDS[end.status]} {trial.trial_id}  {after}  {done}")

    @override
    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        """One line per failed trial; the first time an error is seen, the frames of it that are
        in the user's own files; the whole traceback stays in the sweep folder."""
        done = self._done(trials, trial)
        trace_file = self.folder.error_file(trial.trial_id)
        trace = trace_file.read_text() if trace_file.exists() else ""
        lines = [line for line in trace.splitlines() if line.strip()]
        error = lines[-1].strip() if lines else "unknown error"
        first = self.errors_shown.setdefault(error, trial.trial_id)
        told = escape(error) if first == trial.trial_id else f"the same error as {first}"
        self.console.print(
            f"[red]failed[/red]   {trial.trial_id}  {told}  [dim]({done}/{self.num_samples} done; "
            f"traceback: {escape(str(trace_file))})[/dim]"
        )
        if first == trial.trial_id:
            for frame in user_frames(trace):
                self.console.print(f"           [dim]at[/dim] {escape(frame)}")
