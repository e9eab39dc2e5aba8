"""Cost of the comparison protocol on the teaching suite (quoted in docs/protocol.md).

    python benchmarks/protocol.py             # best of three
    python benchmarks/protocol.py --repeat 5

Times ``run_protocol`` on examples/teaching_suite.toml (tuning: defaults + budget trials per rule on
the tune seeds; test: defaults and the chosen trial on the test seeds), and a plain run of the same
rules as written (their defaults) on every problem with the test seeds: what one would run without
the protocol. One process, alternately in the same process, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from descentlab.experiment import load_experiment_file
from descentlab.protocol import run_protocol
from descentlab.runner import run_experiment

ROOT = Path(__file__).resolve().parents[1]


def plain(experiment) -> int:
    """Every problem once: the rules as written, the test seeds; returns the number of runs."""
    runs = 0
    for p in experiment.suite:
        job = replace(
            experiment,
            problem=p["name"],
            problem_settings=p["settings"],
            steps=p["steps"],
            seeds=list(experiment.protocol.test_seeds),
            target_loss=p["target_loss"],
            protocol=None,
            suite=[],
        )
        runs += len(run_experiment(job, workers=1).runs)
    return runs


def protocol(experiment) -> int:
    outcome = run_protocol(experiment, run=lambda e, **kw: run_experiment(e, workers=1, **kw))
    p = experiment.protocol
    per_problem = len(experiment.entries) * ((1 + p.budget) * len(p.tune_seeds) + 2 * len(p.test_seeds))
    assert sum(len(r.runs) for r in outcome.test_results) == len(experiment.entries) * 2 * len(p.test_seeds) * len(
        experiment.suite
    )
    return per_problem * len(experiment.suite)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--experiment", default=str(ROOT / "examples" / "teaching_suite.toml"))
    args = parser.parse_args()
    experiment = load_experiment_file(args.experiment)
    best = {"plain": float("inf"), "protocol": float("inf")}
    runs = {}
    for _ in range(args.repeat):
        for name, job in (("plain", plain), ("protocol", protocol)):
            started = time.perf_counter()
            runs[name] = job(experiment)
            best[name] = min(best[name], time.perf_counter() - started)
    print(
        f"{experiment.name}: {len(experiment.suite)} problems, {len(experiment.entries)} rules, "
        f"budget {experiment.protocol.budget}, {len(experiment.protocol.tune_seeds)} tune / "
        f"{len(experiment.protocol.test_seeds)} test seeds"
    )
    print(f"plain run of the rules as written on the test seeds: {runs['plain']:4d} runs  {best['plain']:.3f} s")
    print(
        f"protocol (tune + select + test):                     {runs['protocol']:4d} runs  "
        f"{best['protocol']:.3f} s  ({best['protocol'] / best['plain']:.2f}x)"
    )


if __name__ == "__main__":
    main()
