"""Cost of the comparison protocol on the teaching suite (quoted in docs/protocol.md).

    python benchmarks/protocol.py             # best of three
    python benchmarks/protocol.py --repeat 5

Times ``run_protocol`` on examples/teaching_suite.toml (tuning: defaults + budget trials per rule on
the tune seeds; test: defaults and the chosen trial on the test seeds), and a plain run of the same
rules as written (their defaults) on every problem with the test seeds: what one would run without
the protocol. One process, alternately in the same process, best of ``--repeat``: the protocol
without and with its wall-time measurement (3 timed single runs per rule and problem), and as
``descentlab run`` runs it (the runner's default workers: both cores when a batch is large enough).
Each line gives wall and CPU seconds (this process's CPU time, which another job's load hardly
moves; the both-cores line's workers are not in it), and the wall-time measurement's own share.
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


TIMING_SPENT = [0.0, 0.0]  # wall and CPU seconds inside the wall-time measurement (protocol._timing)


def _counted(inner):
    def timed(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            TIMING_SPENT[0] += time.perf_counter() - wall
            TIMING_SPENT[1] += time.process_time() - cpu

    return timed


def protocol(experiment, timing: bool = True, workers: int | None = 1) -> int:
    outcome = run_protocol(experiment, run=lambda e, **kw: run_experiment(e, workers=workers, **kw), timing=timing)
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
    jobs = {
        "plain": plain,
        "untimed": lambda e: protocol(e, timing=False),
        "protocol": protocol,
        "cores": lambda e: protocol(e, workers=None),
    }
    import descentlab.protocol as protocol_module

    protocol_module._timing = _counted(protocol_module._timing)
    best = dict.fromkeys(jobs, float("inf"))
    cpu = dict.fromkeys(jobs, float("inf"))
    runs = {}
    share = []
    for _ in range(args.repeat):
        for name, job in jobs.items():
            TIMING_SPENT[:] = [0.0, 0.0]
            started, started_cpu = time.perf_counter(), time.process_time()
            runs[name] = job(experiment)
            wall, used = time.perf_counter() - started, time.process_time() - started_cpu
            best[name], cpu[name] = min(best[name], wall), min(cpu[name], used)
            if name == "protocol":
                share.append((TIMING_SPENT[0] / wall, TIMING_SPENT[1] / used))
    print(
        f"{experiment.name}: {len(experiment.suite)} problems, {len(experiment.entries)} rules, "
        f"budget {experiment.protocol.budget}, {len(experiment.protocol.tune_seeds)} tune / "
        f"{len(experiment.protocol.test_seeds)} test seeds"
    )
    print(
        f"plain run of the rules as written on the test seeds: {runs['plain']:4d} runs  {best['plain']:.3f} s"
        f"  (CPU {cpu['plain']:.3f} s)"
    )
    for name, what in (
        ("untimed", "protocol (tune + select + test), no wall times:"),
        ("protocol", "protocol with wall times (the default):"),
        ("cores", "the same as descentlab run runs it (both cores):"),
    ):
        print(
            f"{what:<52} {runs[name]:4d} runs  {best[name]:.3f} s  ({best[name] / best['plain']:.2f}x)"
            f"  (CPU {cpu[name]:.3f} s, {cpu[name] / cpu['plain']:.2f}x)"
        )
    print(
        "the wall-time measurement's share of the timed protocol: "
        + ", ".join(f"{w:.0%} of its wall time and {c:.0%} of its CPU time" for w, c in share)
    )


if __name__ == "__main__":
    main()
