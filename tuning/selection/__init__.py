"""Choosing after a sweep: seed re-runs of the top trials, the test split evaluated once for
what was chosen, and the exported best config."""
