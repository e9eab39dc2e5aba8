"""How long a stage change of the How it works page takes (quoted in docs/lesson_plan.md and docs/dev/speed.md).

    python benchmarks/lesson.py

Two measurements: the page's own computation for one stage (trace, finite differences, the rule's
step, the diagram's record and its plotly JSON), for networks from 2-3-1 up to the page's 30-neuron
limit; and a whole Streamlit rerun after a stage button click, through AppTest (the server side of
what a click costs, without the browser's drawing). Target: under 0.3 s.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from descentlab import lesson as L
from descentlab.dashboard import lesson_figures as LF
from descentlab.registry import load_registry

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
NETWORKS = [("xor", [3]), ("moons", [4, 3]), ("iris", [8, 8]), ("xor", [14, 13])]


def stage_compute(instance, rule, params, stage: str):
    trace = L.trace_step(instance, params, 0)
    L.finite_difference_gradient(instance, params)
    L.finite_difference_gradient(instance, params, example=0)  # the example's own Jₙ, beside a_prev·δ
    update = L.descent_step(L.start_track(rule, params), params, trace.gradient, 0.5, 0)
    info = LF.network_info(trace, stage, update=update, lit_from=1)
    return LF.draw_network(info).to_json()


def median_seconds(fn, repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    registry = load_registry(entry_points=False, use_env=False)
    rule = registry.rule("adam")
    print("network            parameters   one stage's computation (median of 15)")
    for name, hidden in NETWORKS:
        instance = L.build_instance({"name": name, "hidden": hidden}, registry)
        params = instance.init_params([0])[0]
        seconds = median_seconds(lambda: stage_compute(instance, rule, params, "descent"))
        sizes = "-".join(map(str, L.lesson_model(instance).sizes))
        print(f"{name:>5} {sizes:<12} {params.size:>10}   {seconds * 1e3:8.1f} ms")

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    stages = ["forward", "cost", "backprop", "descent", "next"]
    times = []
    for k in range(20):
        button = at.button(key=f"how.stage.{stages[k % len(stages)]}")
        start = time.perf_counter()
        button.click().run()
        times.append(time.perf_counter() - start)
        assert not at.exception
    print(
        f"whole page rerun after a stage click (AppTest, xor 2-3-1, median of 20): "
        f"{statistics.median(times) * 1e3:.0f} ms (max {max(times) * 1e3:.0f} ms)"
    )


if __name__ == "__main__":
    main()
