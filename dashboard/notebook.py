"""Results in a notebook: ``results.plot.loss()`` and friends (plotly figures from the dashboard's own functions)."""

from __future__ import annotations

from descentlab import analysis

LEGEND_LIMIT = 12  # more configurations than this: plot each entry's best one, not every grid point


class ResultPlots:
    """Plotly figures of one ``Results`` record (the dashboard's own figure functions).

    Big sweeps keep a readable legend: with more than ``LEGEND_LIMIT`` configurations, the curve
    methods draw only each entry's best configuration (``every=True`` draws them all).
    """

    def __init__(self, results):
        self.results = results

    def _groups(self, every: bool):
        from . import figures

        groups = figures.run_groups(self.results)
        if every or len(groups) <= LEGEND_LIMIT:
            return groups
        best = {entry: set(ids) for entry, ids in analysis.best_run_ids(self.results).items()}
        return [g for g in groups if set(g.run_ids) & best.get(g.entry, set())]

    def loss(self, every: bool = False):
        """Training (and test) loss against step, median over seeds with the spread as a band."""
        from . import figures

        return figures.draw_curves(figures.loss_curves_info(self.results, groups=self._groups(every)))

    def step_sizes(self, every: bool = False):
        """‖Δθₜ‖ against step."""
        from . import figures

        return figures.draw_curves(figures.step_size_info(self.results, groups=self._groups(every)))

    def learning_rates(self, every: bool = False):
        """αₜ against step (the schedules)."""
        from . import figures

        return figures.draw_curves(figures.learning_rate_info(self.results, groups=self._groups(every)))

    def sweep(self):
        """Final loss against α per entry, each α marked by its worst status, ★ the largest stable α."""
        from . import figures

        return figures.draw_sweep(figures.sweep_info(self.results))

    def landscape(self, registry=None, every: bool = False):
        """Contours of a 2-parameter problem with each run's path (landscapes and linear regression).

        The problem is built from ``registry`` (default: the usual one, with the plugin files the
        run loaded, from its meta, when the problem is not there).

        On a big sweep, as for the curves, only the paths of each entry's best configuration (every
        seed of it); ``every=True`` draws every run's path."""
        from descentlab import get_registry, is_landscape, load_registry
        from . import figures

        e = self.results.experiment
        if registry is None:
            registry = get_registry()
            files = self.results.meta.get("plugins", {}).get("plugin_files") or []
            if e.problem not in registry.problems and files:
                # a problem from a plugin file: the files the run loaded are in its meta.json
                registry = load_registry(files)
        instance = registry.problem(e.problem).build(dict(e.problem_settings))
        if not is_landscape(instance):
            raise ValueError(f"problem {e.problem!r} has {instance.layout.size} parameters: a landscape needs 2")
        run_ids = sorted(int(r) for g in self._groups(every) for r in g.run_ids)
        return figures.draw_landscape(figures.landscape_info(self.results, instance, run_ids=run_ids))


__all__ = ["LEGEND_LIMIT", "ResultPlots"]
