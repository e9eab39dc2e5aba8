"""Cost of run verdicts and of the explanations of flagged runs (quoted in docs/verdicts.md).

    python benchmarks/explain.py            # three repeats per job
    python benchmarks/explain.py --repeat 5

For each shipped example, the whole ``run_experiment`` is timed with explanations on and off (off:
``tables._explain`` replaced by one that returns empty columns), alternately in the same process,
best of ``--repeat``; only flagged runs are explained, so the extra time is reported per flagged
run too. The verdicts themselves (``verdicts.classify``) are timed on the tiny job's shape: 256 runs
x 1001 steps.
"""

from __future__ import annotations

import argparse
import glob
import os
import time
from pathlib import Path

import numpy as np

import descentlab.runner as runner
import descentlab.tables as tables
from descentlab.experiment import load_experiment_file
from descentlab.verdicts import FLAGGED, classify

ROOT = Path(__file__).resolve().parents[1]


def _no_explanations(experiment, registry, instance, configs, status, flagged_at, **records):
    n = len(configs)
    return [""] * n, np.full(n, np.nan), np.full(n, np.nan)


def timed(experiment, explain: bool) -> tuple[float, object]:
    original = tables._explain
    if not explain:
        tables._explain = _no_explanations
    try:
        start = time.perf_counter()
        results = runner.run_experiment(experiment, workers=1)
        return time.perf_counter() - start, results
    finally:
        tables._explain = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; one process (workers=1), best of {args.repeat}")
    print(
        f"{'example':22s} {'runs':>5s} {'flagged':>8s} {'without':>9s} {'with':>9s} {'ratio':>6s} "
        f"{'per flagged run':>16s}"
    )
    for path in sorted(glob.glob(str(ROOT / "examples" / "*.toml"))):
        experiment = load_experiment_file(path)
        timed(experiment, True)  # warm-up: imports, data sets
        off, on = [], []
        for _ in range(args.repeat):
            off.append(timed(experiment, False)[0])
            seconds, results = timed(experiment, True)
            on.append(seconds)
        flagged = int(results.runs["status"].isin(FLAGGED).sum())
        extra = min(on) - min(off)
        per = f"{1e3 * extra / flagged:.1f} ms" if flagged else "-"
        print(
            f"{Path(path).stem:22s} {len(results.runs):5d} {flagged:8d} {min(off):8.3f}s {min(on):8.3f}s "
            f"{min(on) / min(off):6.2f} {per:>16s}"
        )
    rng = np.random.default_rng(0)
    loss = np.cumprod(0.99 + 0.001 * rng.standard_normal((256, 1001)), axis=1)
    best = min(_time(lambda: classify(loss, np.full(256, 1000), ["finished"] * 256, minimum=0.0)) for _ in range(30))
    print(f"verdicts of 256 runs x 1001 steps: {1e3 * best:.2f} ms (best of 30)")


def _time(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
