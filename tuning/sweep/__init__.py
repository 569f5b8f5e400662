"""The parts of one sweep: its file and search space, the checks before it, the cluster it
runs on, Ray Tune with Optuna, one trial, progress lines, checkpoint retention, the callbacks
that keep its records, and reconciling them on resume (`tuning.driver` runs them together)."""
