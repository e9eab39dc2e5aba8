"""An experiment's grid: its configurations, and the run ids of each configuration's seeds.

A *configuration* is one point of a rule entry's grid (base α with one value of every other
hyperparameter and schedule hyperparameter); its runs differ only in the seed. The runner numbers
runs entry by entry, then configuration by configuration (α outermost, as
:meth:`~descentlab.experiment.RuleEntry.grid` lists them), with the seeds innermost, so configuration
``k`` of an experiment with ``S`` seeds owns runs ``k·S … k·S + S − 1``. This module states that
numbering once; ``Results.configurations`` and the charts' groups use it. The summary
(``descentlab.analysis``) groups an entry's runs by its grid columns, which is the same partition
because an experiment refuses repeated values on an axis (checked in tests/core/test_grid.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .experiment import Experiment

__all__ = ["Configuration", "configurations", "configuration_of_run"]


@dataclass(frozen=True)
class Configuration:
    """One point of an entry's grid and the runs (one per seed) that trained it."""

    index: int  # position over the whole experiment, 0 … n_configurations − 1
    entry: int  # index of its ``[[rules]]`` entry
    label: str
    rule: str
    schedule: str
    learning_rate: float
    hyper: dict  # every rule hyperparameter at this point (defaults written out, as in the runs table)
    schedule_hyper: dict
    warmup_steps: int
    seeds: tuple[int, ...]
    run_ids: tuple[int, ...]  # run_ids[i] trained with seeds[i]

    @property
    def coordinates(self) -> dict:
        """Its values as the runs table names them: ``learning_rate``, each hyperparameter, ``schedule.<name>``."""
        return {
            "learning_rate": self.learning_rate,
            **self.hyper,
            **{f"schedule.{name}": value for name, value in self.schedule_hyper.items()},
        }


def configurations(experiment: "Experiment") -> list[Configuration]:
    """Every configuration of ``experiment`` in run-id order (the numbering of the module docstring)."""
    seeds = tuple(int(s) for s in experiment.seeds)
    out: list[Configuration] = []
    for entry_index, entry in enumerate(experiment.entries):
        for learning_rate, hyper, schedule_hyper in entry.grid():
            first = len(out) * len(seeds)
            out.append(
                Configuration(
                    index=len(out),
                    entry=entry_index,
                    label=entry.label,
                    rule=entry.rule,
                    schedule=entry.schedule,
                    learning_rate=float(learning_rate),
                    hyper=dict(hyper),
                    schedule_hyper=dict(schedule_hyper),
                    warmup_steps=int(entry.warmup_steps),
                    seeds=seeds,
                    run_ids=tuple(range(first, first + len(seeds))),
                )
            )
    return out


def configuration_of_run(experiment: "Experiment", run_id: int) -> int:
    """The index of the configuration that run ``run_id`` belongs to."""
    n_runs = experiment.n_runs
    if not 0 <= run_id < n_runs:
        from .errors import SpecError

        raise SpecError("run_id", run_id, f"an integer in [0, {n_runs - 1}]")
    return run_id // len(experiment.seeds)
