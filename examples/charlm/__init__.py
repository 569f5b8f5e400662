"""A character-level transformer language model on the Python standard library's own source
text (every machine has it offline), tuned with `trainable: examples.charlm.train:fit`."""
