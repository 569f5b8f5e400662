"""Worked examples, each a training function (`tuning.run.fit`) a sweep file names."""
