"""What the examples/paper/ scripts share: running pykan 0.2.8 beside kanext, and matplotlib off-screen."""
from __future__ import annotations

import contextlib
import os
import tempfile

import torch


@contextlib.contextmanager
def pykan_sandbox():
    """pykan in float64 (it builds in the default dtype), in a temporary working directory (the files it
    may write go there) and with its prints swallowed; restores the dtype and directory on exit."""
    old, cwd = torch.get_default_dtype(), os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.makedirs("model")  # pykan 0.2.8's prune() logs to ./model/history.txt even with auto_save=False
        torch.set_default_dtype(torch.float64)
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                yield
        finally:
            torch.set_default_dtype(old)
            os.chdir(cwd)


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
