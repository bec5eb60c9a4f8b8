"""kanext: fused CPU/CUDA kernels for Kolmogorov-Arnold Networks (KANs).

Public API:
    KANLinear   one KAN layer, a drop-in for nn.Linear (pykan's KANLayer function)
    KAN         a stack of KANLinear layers, with pykan's multiplication nodes (MultKAN: the same class)
    SplineActivation, LANLayer, LAN, Sine   learnable activation networks (appendix B)
    from_pykan, to_pykan   convert a trained pykan model or layer, and back
    replace_linear   swap the nn.Linear layers of any model for KANLinear layers
    distributed      grid updates and fit() under torch.distributed (DDP, torchrun)
    hypothesis  separability / symmetry tests and trees of a learned function (pykan's kan.hypothesis)
    symbolic    symbolic regression: fix_symbolic / auto_symbolic / symbolic_formula, SYMBOLIC_LIB
    MLP         a plain MLP baseline with KAN's interface (fit, attribute, plot, save/load)
    create_dataset, checkpoint (save/load without pickle), grid, training, regularization
    utils       pykan's kan.utils helpers (batch_jacobian, batch_hessian, ex_round, ...)
    spline      pykan's kan.spline functions (B_batch, coef2curve, curve2coef, extend_grid)
    ops         the fused custom ops (spline_basis, kan_linear, ...)
    set_backend, get_backend, use_backend   CUDA strategy: local support or tensor cores
    reference   their pure-PyTorch twins
    cpu_cache_info, empty_cpu_cache, set_cpu_cache_limit   the cache of large CPU outputs (kanext.memory)
"""
from . import checkpoint, compiler, datasets, distributed, hypothesis, memory, ops, reference, spline, symbolic, utils
from .backend import get_backend, set_backend, use_backend
from .checkpoint import CheckpointError
from .compiler import expr2kan
from .datasets import create_dataset
from .kan import KAN

MultKAN = KAN  # pykan's name for its KAN class (kanext's KAN has multiplication nodes too)
from .lan import LAN, LANLayer, Sine, SplineActivation
from .layers import KANLinear
from .memory import cpu_cache_info, empty_cpu_cache, set_cpu_cache_limit
from .mlp import MLP
from .ops import kan_linear, spline_basis, spline_basis_deriv
from .pykan_compat import from_pykan, to_pykan
from .replace import replace_linear

__version__ = "0.1.0"

__all__ = [
    "KAN", "KANLinear", "LAN", "LANLayer", "SplineActivation", "Sine", "from_pykan", "create_dataset",
    "CheckpointError", "checkpoint", "datasets", "ops", "reference", "symbolic", "kan_linear", "spline_basis",
    "spline_basis_deriv", "set_backend", "get_backend", "use_backend", "replace_linear", "distributed",
    "to_pykan", "utils", "hypothesis", "MLP", "compiler", "expr2kan", "MultKAN", "spline",
    "memory", "cpu_cache_info", "empty_cpu_cache", "set_cpu_cache_limit",
]
