"""Worked examples, each a training function (`tuning.fit`) a sweep file names."""
