"""Fixtures and hooks of the kanext tests (helpers are in helpers.py).

The host-emulation tests of the CUDA kernels (tests/emu/) carry the ``emu``
marker and run only when asked for (``-m emu``, as scripts/emu_check.sh does):
the default run leaves them out, since they compile and emulate the kernels
for minutes.

The kanext under test is the one this process imported (an editable install,
or an in-place build found from the current folder, as in scripts/gpu_check.sh
and scripts/ci_cuda_build.sh). Its folder is put first on PYTHONPATH, so that
the subprocesses some tests start (examples, torch.distributed workers) import
that same kanext and not another copy installed in the environment.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import kanext

_ROOT = str(Path(kanext.__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join([_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                      if p and p != _ROOT])

EMU_DIR = Path(__file__).parent / "emu"


def pytest_configure(config):
    config.addinivalue_line("markers", "emu: host emulation of the CUDA kernels (tests/emu/); run with -m emu")


def pytest_collection_modifyitems(config, items):
    emu = [item for item in items if EMU_DIR in Path(str(item.path)).parents]
    for item in emu:
        item.add_marker(pytest.mark.emu)
    if emu and "emu" not in (config.getoption("markexpr") or ""):
        config.hook.pytest_deselected(items=emu)
        skip = set(emu)
        items[:] = [item for item in items if item not in skip]


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (run scripts/gpu_check.sh on a GPU machine)"))])
def device(request):
    """The device of a test body written once for CPU and CUDA (the cuda case skips without a GPU).
    Inputs are made on the CPU with fixed-seed generators, then moved."""
    return request.param


@pytest.fixture
def pykan_float64_in_tmp(tmp_path, monkeypatch):
    """For tests that build pykan models: pykan builds in the default dtype (float64 here)
    and may write checkpoints to its cwd (a temporary folder here)."""
    monkeypatch.chdir(tmp_path)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
