"""Finds the CUDA toolkit for the build (setup.py, CMakeLists.txt), without torch.

torch guesses CUDA_HOME from the folder of the nvcc on PATH; where that nvcc
is a wrapper script or a link outside the toolkit (as on machines whose
/usr/local/bin/nvcc is `exec /usr/local/cuda-13.0/bin/nvcc "$@"`), the guess
is wrong and the bindings do not find cuda_runtime.h. The search here, in
order:

1. CUDA_HOME, then CUDA_PATH, when set (used as given: an invalid one is an
   error, not skipped, so that a typo is not silently replaced);
2. the nvcc on PATH, following symbolic links and wrapper scripts (a shell
   script whose text names another .../bin/nvcc) to the real compiler;
3. the standard folders: /usr/local/cuda, the newest /usr/local/cuda-X.Y, /opt/cuda.

A toolkit is a folder with bin/nvcc and include/cuda_runtime.h.

    python tools/cuda_toolkit.py     # prints the toolkit folder (exit 1 if none)
"""
from __future__ import annotations

import glob
import os
import re
import shutil

STANDARD_ROOTS = ("/usr/local/cuda", "/usr/local/cuda-*", "/opt/cuda")
_NVCC_IN_TEXT = re.compile(r"""(/[^\s"';|&]+/bin/nvcc)(?![\w.-])""")


def is_toolkit(path: str) -> bool:
    return (os.path.isfile(os.path.join(path, "bin", "nvcc"))
            and os.path.isfile(os.path.join(path, "include", "cuda_runtime.h")))


def _version_key(path: str):
    m = re.search(r"cuda-(\d+)(?:\.(\d+))?", path)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (-1, -1)


def real_nvcc(nvcc: str, depth: int = 8) -> str:
    """The compiler an nvcc path stands for: links resolved, wrapper scripts followed."""
    path = os.path.realpath(nvcc)
    for _ in range(depth):
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError:
            return path
        if not head.startswith(b"#!"):
            return path  # a binary: the compiler itself
        targets = [t for t in _NVCC_IN_TEXT.findall(head.decode("utf-8", "replace"))
                   if os.path.realpath(t) != path and os.path.isfile(t)]
        if not targets:
            return path
        path = os.path.realpath(targets[0])
    return path


def find_cuda_toolkit(env=None, which=shutil.which, roots=STANDARD_ROOTS) -> tuple[str | None, str]:
    """(toolkit folder or None, how it was found or why none was)."""
    env = os.environ if env is None else env
    for var in ("CUDA_HOME", "CUDA_PATH"):
        val = env.get(var)
        if val:
            if is_toolkit(val):
                return val, f"{var}={val}"
            return None, (f"{var}={val} is not a CUDA toolkit (needs bin/nvcc and include/cuda_runtime.h); "
                          f"unset it or point it at the toolkit")
    tried = []
    nvcc = which("nvcc")
    if nvcc:
        real = real_nvcc(nvcc)
        home = os.path.dirname(os.path.dirname(real))
        if is_toolkit(home):
            return home, f"nvcc on PATH ({nvcc} -> {real})"
        tried.append(f"nvcc on PATH ({nvcc} -> {real}, whose folder {home} is not a toolkit)")
    else:
        tried.append("no nvcc on PATH")
    for pattern in roots:
        for cand in sorted(glob.glob(pattern), key=_version_key, reverse=True):
            if is_toolkit(cand):
                return cand, f"standard folder {cand}"
    tried.append("standard folders " + ", ".join(roots))
    return None, "no CUDA toolkit found: CUDA_HOME and CUDA_PATH unset; " + "; ".join(tried)


if __name__ == "__main__":
    import sys

    home, how = find_cuda_toolkit()
    if home is None:
        print(how, file=sys.stderr)
        sys.exit(1)
    print(home)
