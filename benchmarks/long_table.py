"""What a run no longer pays for: the long metrics table, built from the per-step arrays on demand.

    python benchmarks/long_table.py              # median of 5 repeats
    python benchmarks/long_table.py --repeat 9

On the tiny job's shape (Rosenbrock, 256 runs: GD / momentum / Nesterov / Adam x 8 α x 8 seeds,
1000 steps, one process) it times ``run_experiment`` and then, on the same record, building
``results.metrics`` (which the run used to build before returning, and the figures then pivoted
back to arrays). Both are medians from the same process; the ratio is what is quoted in
docs/dev/speed.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from descentlab.experiment import Experiment
from descentlab.registry import load_registry
from descentlab.runner import run_experiment


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    registry = load_registry()
    rules = ("gd", "momentum", "nesterov", "adam")
    spec = {
        "name": "bench-long-table",
        "problem": {"name": "rosenbrock"},
        "steps": 1000,
        "seeds": list(range(8)),
        "rules": [{"rule": r, "learning_rate": [float(a) for a in np.geomspace(1e-4, 1e-3, 8)]} for r in rules],
    }
    experiment = Experiment.from_dict(spec, registry)
    run_times, table_times = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        results = run_experiment(experiment, registry=registry, workers=1)
        run_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        _ = results.metrics
        table_times.append(time.perf_counter() - started)
    run, table = float(np.median(run_times)), float(np.median(table_times))
    print(
        f"{experiment.n_runs} runs x {experiment.steps} steps: run {run * 1e3:.1f} ms, "
        f"long table {table * 1e3:.1f} ms ({table / run:.1%} of the run; built only when read or saved)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
