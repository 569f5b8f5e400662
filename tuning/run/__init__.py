"""Running one config: the run-config format and its command-line overrides, the
training-function protocol, the built-in training loop, batches, devices, and user code named
in a config."""
