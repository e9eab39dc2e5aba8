"""The sharpness λ_max of a problem at given weights, from the backprop gradient alone (docs: theory)."""

from descentlab.lesson import build_instance
from descentlab.sharpness import hessian_extreme_eigenvalues, hessian_matrix, top_hessian_eigenvalue

# a quadratic bowl whose Hessian has eigenvalues λ_max = 3 and λ_max / κ = 0.3: GD is stable iff α < 2/3
instance = build_instance({"name": "quadratic", "lambda_max": 3.0, "condition": 10.0, "start_spread": 1.0})
params = instance.init_params([0, 1, 2])  # (R, P) = (3 runs, 2 parameters)

lam = top_hessian_eigenvalue(instance, params)  # (R,) for params (R, P)
lam_max, lam_min = hessian_extreme_eigenvalues(instance, params, iters=50)
H = hessian_matrix(instance, params)  # (R, P, P), small P only (teaching, tests)
print("λ_max per run", lam)
print("λ_min per run", lam_min)
print("critical α = 2/λ_max =", 2 / lam.max())
