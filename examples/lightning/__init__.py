"""A tuned FishLeg config in PyTorch Lightning."""
