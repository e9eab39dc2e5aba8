"""Run an experiment file from Python, keep it under results/, read it back."""

from pathlib import Path

from descentlab import load_experiment_file, load_results, run_experiment, save_results

experiment = load_experiment_file(Path(__file__).parent / "quadratic_sweep.toml")
results = run_experiment(experiment)  # both cores when the job is large enough
folder = save_results(results)  # results/<name>-<YYYYmmdd-HHMMSS>

again = load_results(folder)
print(again)  # a short summary: runs, statuses, where it is
print(again.runs[["rule", "learning_rate", "momentum", "status", "final_loss"]].to_string(index=False))
loss = again.metric("loss")  # (runs, steps + 1): one row per run, as in .runs
print("loss array", loss.shape)
