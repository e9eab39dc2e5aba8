"""descentlab.compare, as in a notebook cell: a rule written in the cell runs beside GD and momentum."""

import numpy as np

import descentlab as dl

# signSGD, θ ← θ − α·sign(∇J), stateless: a DescentRule object needs no plugin file
sign = dl.DescentRule(
    "my_sign", lambda params, hyper: (), lambda grad, state, params, lr, hyper, step: (-lr * np.sign(grad), state)
)
results = dl.compare("quadratic", [sign, "gd", "momentum"], learning_rates=[0.01, 0.1, 1.0], seeds=3, steps=200)
print(results)  # in Jupyter, `results` alone shows the status counts, the verdict and a line per rule
print(results.runs[["rule", "learning_rate", "seed", "status", "final_loss"]].to_string(index=False))
figure = results.plot.loss()  # plotly (the [dashboard] extra): figure.show(), or the cell's last line
