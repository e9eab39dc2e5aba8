"""What a Dask sweep costs on top of the built-in process pool, at three job sizes (quoted in docs/cluster.md).

    python benchmarks/dask_overhead.py            # about a minute on 2 idle cores
    python benchmarks/dask_overhead.py --repeat 1 # one timing each, for a smoke test

Jobs: the dashboard's typical network (2-32-32-1 tanh MLP, 256 spirals points, full batch), GD /
momentum / Adam, at 3 sizes (runs x steps). Each is run by ``run_experiment(workers=2)`` (the
built-in pool, tables in memory) and by ``run_sweep`` on a LocalCluster of 2 single-threaded
worker processes (tasks write their Parquet parts, which are then read back). The pool is timed
first (a Dask client's threads would make it start workers from a fork server); the cluster is
then started once and warmed up (its workers import descentlab) before timing, its start-up
printed separately. Best of ``--repeat``; the ratio is dask / pool; the loss curves are checked
to be identical. The load average is printed: with other processes busy the figures move.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from descentlab.cluster import close, connect, run_sweep
from descentlab.experiment import Experiment
from descentlab.runner import run_experiment

SIZES = {  # name -> (learning rates per rule, steps); 3 rules, 1 seed
    "small": (4, 50),
    "medium": (8, 300),
    "large": (16, 1000),
}


def spec(name: str, rates: int, steps: int) -> dict:
    grid = [float(v) for v in np.geomspace(1e-3, 1.0, rates)]
    return {
        "name": f"overhead-{name}",
        "steps": steps,
        "seeds": 1,
        "eval_every": 0,
        "problem": {"name": "spirals", "samples": 256, "hidden": [32, 32]},
        "rules": [
            {"rule": "gd", "learning_rate": grid},
            {"rule": "momentum", "learning_rate": grid},
            {"rule": "adam", "learning_rate": grid},
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="timings per job and executor (best is kept)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    jobs = {name: Experiment.from_dict(spec(name, rates, steps)) for name, (rates, steps) in SIZES.items()}
    # The pool first: once a Dask client runs in this process it has threads, and the pool then
    # starts its workers from a fork server (they import descentlab afresh) instead of forking.
    pool_times, losses = {}, {}
    for name, experiment in jobs.items():
        times = []
        for _ in range(max(args.repeat, 1)):
            t = time.perf_counter()
            pool = run_experiment(experiment, workers=2)
            times.append(time.perf_counter() - t)
        pool_times[name], losses[name] = min(times), pool.metrics["loss"].to_numpy()
    started = time.perf_counter()
    client = connect(n_workers=2)
    print(f"LocalCluster(2 processes) start: {time.perf_counter() - started:.2f} s")
    scratch = Path(tempfile.mkdtemp(prefix="dask-overhead-"))
    try:
        warm = Experiment.from_dict(spec("warm-up", 1, 5))
        started = time.perf_counter()
        run_sweep(warm, scratch / "warm", client=client)
        print(f"first sweep on fresh workers (they import descentlab): {time.perf_counter() - started:.2f} s")
        print(f"{'job':8} {'runs':>5} {'steps':>6} {'tasks':>6} {'pool s':>8} {'dask s':>8} {'dask/pool':>10}")
        for name, experiment in jobs.items():
            times = []
            for k in range(max(args.repeat, 1)):
                folder = scratch / f"{name}-{k}"
                t = time.perf_counter()
                dask = run_sweep(experiment, folder, client=client)
                times.append(time.perf_counter() - t)
                # same numbers, or the timing means nothing
                assert np.array_equal(losses[name], dask.metrics["loss"].to_numpy(), equal_nan=True)
                shutil.rmtree(folder)
            p, d = pool_times[name], min(times)
            print(
                f"{name:8} {experiment.n_runs:5d} {experiment.steps:6d} {dask.meta['chunks']:6d} {p:8.3f} "
                f"{d:8.3f} {d / p:10.2f}"
            )
    finally:
        close(client)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
