"""One training step taken apart, from a notebook or a script: backprop's gradient, then the rule's step."""

import numpy as np

from descentlab import lesson
from descentlab.registry import get_registry

registry = get_registry()
instance = lesson.build_instance({"name": "xor", "hidden": [3]}, registry)
run = lesson.start_lesson(instance, registry.rule("gd"), learning_rate=1.0)

trace, step = lesson.advance(run)  # backprop at the current weights, then the rule's step
check = lesson.finite_difference_gradient(instance, trace.params)
print("output layer δ for example 0:", trace.layers[-1].delta)
print("largest |backprop − central difference|:", np.max(np.abs(trace.gradient - check)))
print("gradient descent's step is −α·∇J:", np.allclose(step, -1.0 * trace.gradient))

prediction = lesson.predict_then_run("linear_regression", guess=0.5, rule="gd")
print(
    f"guess {prediction.guess:g} ({prediction.guess_status}), theory 2/λ_max {prediction.theory:.4g}, "
    f"measured between {prediction.measured:.4g} and {prediction.first_flagged:.4g}"
)
