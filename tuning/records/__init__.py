"""A sweep's records: its folder, the ledger of trials (and the ranking that chooses among
them), MLflow tracking, atomic files, and the Ray processes a killed sweep leaves behind.
Nothing here imports Ray or the training code."""
