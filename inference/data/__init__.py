"""Datasets (embedded MNIST, IDX folders, torchvision) and minibatch streams."""
