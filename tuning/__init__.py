"""fishleg-tune: Ray Tune + Optuna + MLflow sweeps for FishLeg."""
