"""Run 0's final weights, read from weights.npz as plain arrays: the network's forward pass by hand."""

import numpy as np

from descentlab import Experiment, run_experiment, save_results
from descentlab.lesson import build_instance

problem = {"name": "moons", "hidden": [32, 32], "activation": "tanh"}  # a 2-32-32-1 tanh network
experiment = Experiment.from_dict(
    {"name": "moons-weights", "steps": 100, "seeds": 1, "problem": problem, "rules": [{"rule": "adam"}]}
)
folder = save_results(run_experiment(experiment, workers=1))
x = build_instance(problem).dataset.x_test  # inputs as the network sees them

w = np.load(folder / "weights.npz")
W1, b1, W2, b2, W3, b3 = (w[f"final.{n}"][0] for n in ("W1", "b1", "W2", "b2", "W3", "b3"))
logits = np.tanh(np.tanh(x @ W1 + b1) @ W2 + b2) @ W3 + b3
# PyTorch: linear.weight.data = torch.from_numpy(W1.T); linear.bias.data = torch.from_numpy(b1)
print("test accuracy", np.mean((logits[:, 0] > 0) == build_instance(problem).dataset.y_test[:, 0]))
