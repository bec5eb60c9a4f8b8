"""Data sets: synthetic regression data from a formula (:func:`create_dataset`,
pykan's ``create_dataset``) and the Feynman equations benchmark
(:mod:`kanext.datasets.feynman`)."""
from . import feynman
from ._create import create_dataset
from .feynman import feynman_dataset, get_feynman_dataset

__all__ = ["create_dataset", "feynman", "feynman_dataset", "get_feynman_dataset"]
