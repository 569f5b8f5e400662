"""A tuned FishLeg config in a data-parallel script started by torchrun."""
