"""Edge of stability: full-batch GD on a small tanh MLP sharpens until λ_max meets 2/α, then hovers."""

import numpy as np

from descentlab.experiment import Experiment
from descentlab.registry import get_registry
from descentlab.runner import run_experiment
from descentlab.sharpness import top_hessian_eigenvalue


def test_progressive_sharpening_up_to_two_over_alpha_and_hovering():
    alpha, every, steps = 0.2, 10, 400
    spec = {
        "steps": steps,
        "seeds": [0],
        "sharpness_every": every,
        "eval_every": steps,
        "problem": {"name": "sine", "hidden": [16], "samples": 64, "activation": "tanh"},
        "rules": [{"rule": "gd", "learning_rate": alpha}],
    }
    results = run_experiment(Experiment.from_dict(spec), workers=1)
    assert results.runs["status"].tolist()[0] in ("converged", "progressing")  # hovering at 2/α is stable
    metrics = results.metrics.sort_values("step")
    measured = metrics[metrics["sharpness"].notna()]
    assert measured["step"].tolist() == list(range(0, steps + 1, every))
    sharp = measured["sharpness"].to_numpy()
    edge = 2.0 / alpha
    # after the first steps the network is well inside the stable region ...
    assert sharp[1] < 0.7 * edge
    # ... then sharpens steadily (progressive sharpening) until it reaches 2/α
    first_at_edge = int(np.argmax(sharp[1:] >= edge)) + 1
    assert sharp[first_at_edge] >= edge and first_at_edge > 5
    assert np.all(np.diff(sharp[1:first_at_edge]) > 0)
    # ... and afterwards hovers around 2/α instead of growing without bound, while training goes on
    tail = sharp[len(sharp) * 2 // 3 :]
    assert 0.8 * edge < tail.mean() < 1.3 * edge
    loss = metrics["loss"].to_numpy()
    assert loss[-1] < 0.5 * loss[0]
    # the runner's last measurement is the sharpness of the final weights, to the tracker's documented
    # tolerance (Ritz residual <= 3e-4 |θ|: λ_max to 1e-6 relative where the top eigenvalue is separated)
    instance = get_registry().problem("sine").build(dict(results.experiment.problem_settings))
    final = np.concatenate([results.weights[f"final.{e.name}"].reshape(1, -1) for e in instance.layout.entries], axis=1)
    np.testing.assert_allclose(top_hessian_eigenvalue(instance, final), sharp[-1], rtol=1e-6)
