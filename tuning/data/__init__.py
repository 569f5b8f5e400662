"""Dataset readers: real formats (MNIST idx, CIFAR-10 python pickles), verified downloads."""
