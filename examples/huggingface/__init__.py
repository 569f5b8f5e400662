"""A tuned FishLeg config in the Hugging Face Trainer."""
