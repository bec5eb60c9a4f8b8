"""Python side of the kanext custom ops: wrappers, fake kernels, autograd.
Long file: one wrapper and one fake kernel per op schema of csrc/ops.cpp, and
the policies (derivatives, NaN/Inf, 16-bit floats) they share, in one place.

Schemas live in csrc/ops.cpp, CPU kernels in csrc/cpu/, CUDA kernels in
csrc/cuda/, autograd in kanext/autodiff.py (and csrc/autograd.cpp for the
three hot ops: kan_linear_forward, fold_spline_weights, kan_linear_fused), and a pure-PyTorch twin of every op in kanext/reference.py.

Derivatives. Every op is differentiable to any order in its inputs and weights
(plain autograd with create_graph, and torch.func: grad, vjp, jvp, jacrev,
jacfwd, hessian, vmap), each derivative one fused pass with no (N, in, G+k) or
(N, in, out) tensor (kanext/autodiff.py). B-spline derivatives of order
m <= k are exact; beyond k they are zero (the splines are piecewise degree-k
polynomials), while the base term keeps its own derivatives (silu's computed
up to order 10 in the kernels; identity's vanish beyond the first).
edge_stats' derivatives of order 2 and up come from edge_product and
edge_product_wgrad (d|phi|/dphi = sign(phi), whose own derivative is 0).
Forward mode works with torch.func.jvp and with torch.autograd.forward_ad,
one forward level at a time. Not supported, with a clear error: gradients
with respect to grids, and two or more nested forward levels (jacfwd of a
jacfwd or of a hessian: there PyTorch's forward-mode rules for
autograd.Function lose tangents; use jacrev for the outer levels).

NaN/Inf policy. kan_linear: a NaN in x[n, i] makes the whole output row
y[n, :] NaN. In its backward, grad_x[n, i] is NaN for a NaN input and adds
nothing to input i's weight gradients; everything else is computed from
grad_y as usual (so a NaN grad_y, which a loss over NaN outputs gives, spreads
to the weight gradients as in any PyTorch op). spline_basis /
spline_basis_deriv: a NaN input has all-zero bases, as an input outside the
grid does. An infinite x lies outside every grid: its bases are 0 and only the
base term remains (silu(+inf) = +inf, silu(-inf) = NaN, as torch computes
them). No input value can make a kernel read or write out of bounds.
edge_stats: a NaN x[n, i] is skipped: it adds nothing to row i of any
statistic (the other inputs of row n count as usual) and its grad_x is 0, as
for torch.nansum. Divide by the number of non-NaN rows of each input,
``(~torch.isnan(x)).sum(0)``, where that matters.
spline_activation: elementwise, so a NaN z[n, c] makes y[n, c] NaN (whatever
the base) and nothing else; in its backward grad_z[n, c] is NaN there and the
entry adds nothing to channel c's weight gradients. z = +-inf lies outside
every grid: its splines are 0 and only the base term remains, as above.

bfloat16 / float16 on the CPU. Every function here (so every module:
KANLinear, KAN, SplineActivation, LANLayer, LAN after ``.to(torch.bfloat16)``)
accepts 16-bit CPU tensors: they are upcast to float32 (exactly), the float32
kernel runs (float32 arithmetic and accumulation) and each result is rounded
once to the inputs' dtype. The casts are autograd ops, so gradients come back
in each input's own dtype and derivatives of every order and torch.func work
as in float32. All tensor arguments must share the 16-bit dtype (the grid may
also be float32); under ``torch.autocast("cpu")`` float32 weights with a
16-bit x are accepted too, and the op then runs and returns float32 (the
"widest type" rule: a layer kept in float32 stays float32). Any other mix
raises a RuntimeError naming the dtypes. Autograd keeps the float32 copies
of x and the weights for the backward (twice their 16-bit size); float32 and
float64 calls take the kernels directly, as before, and CUDA keeps its own 16-bit
handling (the tensor-core kan_linear kernels and their autocast rule,
csrc/autograd.cpp). Knots stored in 16 bits are rounded (8 significant bits
for bfloat16): a grid finer than that resolution stops being strictly
increasing and the kernels refuse it. The raw ``torch.ops.kanext`` ops stay
float32 / float64 on the CPU.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import _C  # noqa: F401  (loads the shared object, which registers the ops)
from . import autodiff as _ad
from .autodiff import KanEval, fold_dense, transforms_active
from .backend import backend_code
from .checks import HALF as _HALF  # 16-bit floats on the CPU: see the module docstring
from .checks import half_args_as_float32 as _f32
from .checks import round_results as _back

__all__ = [
    "BASE_IDS",
    "spline_basis",
    "spline_basis_deriv",
    "kan_linear",
    "kan_linear_forward",
    "kan_linear_backward",
    "fold_spline_weights",
    "kan_linear_fused",
    "edge_stats",
    "edge_stats_backward",
    "spline_activation",
    "spline_activation_backward",
    "kan_linear_eval",
    "kan_linear_transpose",
    "kan_linear_wgrad",
    "spline_activation_eval",
    "spline_activation_wgrad",
    "edge_product",
    "edge_product_wgrad",
]

#: Residual base functions computed inside the kernels. 'zero' means no base
#: term; any other function runs in PyTorch outside the kernel.
BASE_IDS = {"zero": 0, "identity": 1, "silu": 2}

_ops = torch.ops.kanext


def spline_basis(x: Tensor, grid: Tensor, k: int) -> Tensor:
    """B-spline bases of every input.

    Args:
        x: (N, in) inputs.
        grid: (in, G+2k+1) strictly increasing knots per input.
        k: spline order, 0 to 5.

    Returns:
        (N, in, G+k) basis values in x's dtype; differentiable with respect
        to x. bfloat16 / float16 on the CPU: computed in float32 (module
        docstring).
    """
    if x.dtype in _HALF and x.is_cpu:
        dt, x, grid = _f32("kanext.spline_basis", "x grid", x, grid)
        return spline_basis(x, grid, k).to(dt)
    if transforms_active():
        return _ad.BasisDeriv.apply(x, grid, k, 0)
    return _ops.spline_basis(x, grid, k)


def spline_basis_deriv(x: Tensor, grid: Tensor, k: int, order: int = 1) -> Tensor:
    """Derivatives d^order B_g(x) / dx^order of :func:`spline_basis`, same
    shape; zero for order > k. Differentiable in x (to any order)."""
    if x.dtype in _HALF and x.is_cpu:
        dt, x, grid = _f32("kanext.spline_basis_deriv", "x grid", x, grid)
        return spline_basis_deriv(x, grid, k, order).to(dt)
    if transforms_active():
        return _ad.BasisDeriv.apply(x, grid, k, order)
    return _ops.spline_basis_deriv(x, grid, k, order)


def kan_linear_forward(x: Tensor, grid: Tensor, k: int, base: int, Wb: Tensor, Wc: Tensor,
                       backend: int | None = None) -> Tensor:
    """Raw fused forward (see :func:`kan_linear`); base is an id from BASE_IDS,
    backend the CUDA strategy's code (default: kanext.get_backend()'s)."""
    return _kan_linear(x, grid, k, base, Wb, Wc, backend_code() if backend is None else backend)


def _kan_linear(x, grid, k, base: int, Wb, Wc, backend: int) -> Tensor:
    """The layer's forward: the op with the C++ autograd (no Python on the hot
    path), or, under a torch.func transform, the same kernels through
    kanext.autodiff's transform-aware Function. 16-bit CPU calls run it in
    float32 (module docstring)."""
    if x.dtype in _HALF and x.is_cpu:
        dt, x, grid, Wb, Wc = _f32("kanext.kan_linear", "x grid Wb Wc", x, grid, Wb, Wc)
        return _kan_linear(x, grid, k, base, Wb, Wc, backend).to(dt)
    if transforms_active():
        return KanEval.apply(x, None, grid, k, base, Wb, Wc, 0, backend)
    return _ops.kan_linear_forward(x, grid, k, base, Wb, Wc, backend)


def kan_linear_backward(grad_y, x, grid, k, base, Wb, Wc, need_x=True, need_w=True, backend: int | None = None):
    """Raw fused backward: (grad_x, grad_Wb, grad_Wc). Outputs not asked for
    (need_x / need_w false) are zeros; on the CPU they take no memory (a
    stride-0 expansion of one zero: ``.contiguous()`` gives a writable copy,
    and an in-place write raises torch's error about overlapping memory)."""
    backend = backend_code() if backend is None else backend
    if x.dtype in _HALF and x.is_cpu:
        dt, x, grid, grad_y, Wb, Wc = _f32("kanext.kan_linear_backward", "x grid grad_y Wb Wc", x, grid, grad_y, Wb,
                                           Wc)
        return _back(kan_linear_backward(grad_y, x, grid, k, base, Wb, Wc, need_x, need_w, backend), dt)
    if transforms_active():
        return _ad.KanBackward.apply(grad_y, x, grid, k, base, Wb, Wc, need_x, need_w, backend)
    return _ops.kan_linear_backward(grad_y, x, grid, k, base, Wb, Wc, need_x, need_w, backend)


def _base_id(base: int | str) -> int:
    if isinstance(base, str):
        if base not in BASE_IDS:
            raise ValueError(f"base must be one of {sorted(BASE_IDS)}, got {base!r}")
        return BASE_IDS[base]
    return base


def kan_linear(x: Tensor, grid: Tensor, k: int, base: int | str, Wb: Tensor, Wc: Tensor) -> Tensor:
    """Fused KAN layer on folded weights, differentiable in x, Wb and Wc.

    y[n, j] = sum_i b(x[n, i]) Wb[i, j] + sum_i sum_g B_g(x[n, i]) Wc[i, g, j]

    Args:
        x: (N, in).
        grid: (in, G+2k+1) knots (a buffer: no gradient flows to it).
        k: spline order, 0 to 5.
        base: 'zero', 'identity', 'silu' or the matching id in BASE_IDS.
        Wb: (in, out) base weights; Wc: (in, G+k, out) spline weights.

    Returns:
        (N, out). Cost O(N in out (k+2)); no (N, in, G+k) tensor is formed.
        On CUDA the strategy is kanext.get_backend()'s, passed to the op.
        Differentiable to any order, and under torch.func (module docstring).
        bfloat16 / float16 CPU tensors are computed in float32 and the result
        rounded to their dtype (module docstring).
    """
    return _kan_linear(x, grid, k, _base_id(base), Wb, Wc, backend_code())


def fold_spline_weights(coef: Tensor, scale: Tensor) -> Tensor:
    """Wc[i, g, j] = scale[i, j] * coef[i, j, g]: pykan's (in, out, G+k)
    coefficients and (in, out) per-edge scale (mask * scale_sp) folded into the
    (in, G+k, out) layout the kernels read. Differentiable in coef and scale
    (any order; under a torch.func transform it is computed with PyTorch ops).
    16-bit CPU tensors: the product is formed in float32 and rounded once."""
    if coef.dtype in _HALF and coef.is_cpu:
        dt, coef, scale = _f32("kanext.fold_spline_weights", "coef scale", coef, scale)
        return fold_spline_weights(coef, scale).to(dt)
    if transforms_active():
        return fold_dense(coef, scale)
    return _ops.fold_spline_weights(coef, scale)


def kan_linear_fused(x: Tensor, grid: Tensor, k: int, base: int | str, Wb: Tensor, coef: Tensor, scale: Tensor,
                     backend: int | None = None) -> Tensor:
    """``kan_linear(x, grid, k, base, Wb, fold_spline_weights(coef, scale))``
    on pykan's parameters: coef (in, out, G+k), scale (in, out) (mask *
    scale_sp). Differentiable in x, Wb, coef and scale, to any order and under
    torch.func, like the two calls it stands for.

    On the CPU (float32 / float64) the fold happens inside the kernels, tile
    by tile in cache, forward and backward: no (in, G+k, out) folded weight
    or gradient is formed, and grad_coef is written once (this is what
    KANLinear calls). Elsewhere (CUDA, with its autocast rule; 16-bit CPU
    tensors; torch.func transforms) it is exactly the two calls above."""
    backend = backend_code() if backend is None else backend
    base = _base_id(base)
    if x.is_cpu and x.dtype in (torch.float32, torch.float64) and not transforms_active():
        return _ops.kan_linear_fused(x, grid, k, base, Wb, coef, scale, backend)
    return _kan_linear(x, grid, k, base, Wb, fold_spline_weights(coef, scale), backend)


def edge_stats(
    x: Tensor, grid: Tensor, k: int, base: int | str, Wb: Tensor, Wc: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-edge batch statistics of the edge activations, for regularisation.

    With phi[n, i, j] = b(x[n, i]) Wb[i, j] + sum_g B_g(x[n, i]) Wc[i, g, j] (the
    terms that :func:`kan_linear` sums over i), returns

        (sum_n phi, sum_n phi**2, sum_n |phi|), each (in, out) in x's dtype,

    differentiable to any order in x, Wb and Wc (d|phi|/dphi = sign(phi), 0 at phi = 0, as
    torch.abs). Arguments as for :func:`kan_linear`. Cost O(N in out (k+2)),
    the same as a kan_linear forward; no (N, in, out) tensor is formed.

    NaN x[n, i] are skipped (see the module docstring); with
    ``n = (~torch.isnan(x)).sum(0)[:, None]`` (just N without NaNs):

    - the paper's L1 norm of an edge, mean_n |phi|:  ``s_abs / n``
    - pykan's ``acts_scale_spline`` (the default 'edge_forward_spline_n'
      regulariser), std_n(phi) / (std_n(x) + 0.1) with torch.std's unbiased
      (N - 1) estimator::

          s, s_sq, s_abs = edge_stats(x, grid, k, base, Wb, Wc)
          var = (s_sq - s * s / n) / (n - 1)
          pos = var > 0
          std = torch.where(pos, torch.where(pos, var, 1.0).sqrt(), 0.0)
          scale = std / (torch.std(x, dim=0)[:, None] + 0.1)      # (in, out)

      (pykan's (out, in) layout is its transpose.) The double where gives
      the gradient 0 where the variance is 0, as torch.std does, instead of
      the NaN of sqrt'(0): pruned (masked) edges have phi == 0. At n = 1 it
      gives std 0 where torch.std gives NaN. The one-pass variance has a
      relative error of about eps * (1 + mean**2 / var): in float32
      (eps = 6e-8), 1e-3 for an edge whose mean is 100 times its spread.

    The base term is the kernel's (base 'zero', 'identity' or 'silu'); for
    another base function b, phi's base part b(x) Wb is not included.
    bfloat16 / float16 CPU tensors: summed in float32, the sums rounded to
    x's dtype (module docstring).
    """
    if x.dtype in _HALF and x.is_cpu:
        dt, x, grid, Wb, Wc = _f32("kanext.edge_stats", "x grid Wb Wc", x, grid, Wb, Wc)
        return _back(edge_stats(x, grid, k, base, Wb, Wc), dt)
    if transforms_active():
        return _ad.EdgeStats.apply(x, grid, k, _base_id(base), Wb, Wc)
    return _ops.edge_stats(x, grid, k, _base_id(base), Wb, Wc)


def edge_stats_backward(g_sum, g_sq, g_abs, x, grid, k, base, Wb, Wc, need_x=True, need_w=True):
    """Raw backward of :func:`edge_stats`: (grad_x, grad_Wb, grad_Wc)."""
    if x.dtype in _HALF and x.is_cpu:
        dt, x, grid, g_sum, g_sq, g_abs, Wb, Wc = _f32("kanext.edge_stats_backward", "x grid g_sum g_sq g_abs Wb Wc",
                                                       x, grid, g_sum, g_sq, g_abs, Wb, Wc)
        return _back(edge_stats_backward(g_sum, g_sq, g_abs, x, grid, k, base, Wb, Wc, need_x, need_w), dt)
    if transforms_active():
        return _ad.edge_stats_grads(g_sum, g_sq, g_abs, x, grid, k, _base_id(base), Wb, Wc, need_x, need_w)
    return _ops.edge_stats_backward(g_sum, g_sq, g_abs, x, grid, k, _base_id(base), Wb, Wc, need_x, need_w)


def spline_activation(
    z: Tensor, grid: Tensor, k: int, base: int | str, coef: Tensor, scale_base: Tensor, scale_sp: Tensor
) -> Tensor:
    """Per-channel learnable activation (a LAN's node activations), fused.

    y[n, c] = scale_base[c] * b(z[n, c]) + scale_sp[c] * sum_g coef[c, g] B_g(z[n, c])

    Args:
        z: (N, C) pre-activations, channel last.
        grid: (C, G+2k+1) strictly increasing knots per channel (may be
            non-uniform; a buffer: no gradient flows to it).
        k: spline order, 0 to 5.
        base: 'zero', 'identity', 'silu' or the matching id in BASE_IDS.
        coef: (C, G+k); scale_base, scale_sp: (C,).

    Returns:
        (N, C), differentiable in z, coef, scale_base and scale_sp (the
        backward is one fused pass). Cost per element independent of G: the
        spline on each knot interval is evaluated as one degree-k polynomial.
        On CPUs with AVX-512, float32 with at most 16 knots per channel
        (G + 2k + 1 <= 16) and not too uneven knots takes a faster kernel that
        vectorises over rows; setting the environment variable
        KANEXT_SPLINE_ROWS=0 forces the general kernel. bfloat16 / float16
        CPU tensors are computed in float32 and the result rounded to their
        dtype (module docstring).

    Precision: the CPU kernels store each interval's polynomial in powers of
    z - t_g, which cancel where neighbouring knot spacings differ by many
    orders of magnitude. In float64 the value stays at about 1e-15 relative,
    but grad_z on grids with spacings from 1e-6 to 1e6 (ratio 1e12, k = 3-5)
    was measured as far off as 1e-7 relative (kan_linear and the reference:
    2e-16); at ordinary grids, update_grid's included, both match the
    reference to rounding.
    """
    if z.dtype in _HALF and z.is_cpu:
        dt, z, grid, coef, scale_base, scale_sp = _f32("kanext.spline_activation", "z grid coef scale_base scale_sp",
                                                       z, grid, coef, scale_base, scale_sp)
        return spline_activation(z, grid, k, base, coef, scale_base, scale_sp).to(dt)
    if transforms_active():
        return _ad.ActEval.apply(z, grid, k, _base_id(base), coef, scale_base, scale_sp, 0)
    return _ops.spline_activation(z, grid, k, _base_id(base), coef, scale_base, scale_sp)


def spline_activation_backward(grad_y, z, grid, k, base, coef, scale_base, scale_sp, need_z=True, need_w=True):
    """Raw fused backward of :func:`spline_activation`:
    (grad_z, grad_coef, grad_scale_base, grad_scale_sp)."""
    if z.dtype in _HALF and z.is_cpu:
        dt, z, grid, grad_y, coef, scale_base, scale_sp = _f32(
            "kanext.spline_activation_backward", "z grid grad_y coef scale_base scale_sp", z, grid, grad_y, coef,
            scale_base, scale_sp)
        return _back(spline_activation_backward(grad_y, z, grid, k, base, coef, scale_base, scale_sp, need_z, need_w),
                     dt)
    if transforms_active():
        return _ad.ActBackward.apply(grad_y, z, grid, k, _base_id(base), coef, scale_base, scale_sp, need_z, need_w)
    return _ops.spline_activation_backward(
        grad_y, z, grid, k, _base_id(base), coef, scale_base, scale_sp, need_z, need_w
    )


# ---------------------------------------------------------------- fake kernels
def _check_2d(name, x):
    torch._check(x.dim() == 2, lambda: f"{name}: expected x of shape (N, in), got shape {tuple(x.shape)}")


@torch.library.register_fake("kanext::spline_basis")
def _(x, grid, k):
    _check_2d("kanext.spline_basis", x)
    return x.new_empty((x.shape[0], x.shape[1], grid.shape[1] - k - 1))


@torch.library.register_fake("kanext::spline_basis_deriv")
def _(x, grid, k, order=1):
    _check_2d("kanext.spline_basis_deriv", x)
    return x.new_empty((x.shape[0], x.shape[1], grid.shape[1] - k - 1))


@torch.library.register_fake("kanext::kan_linear_forward")
def _(x, grid, k, base, Wb, Wc, backend=0):
    _check_2d("kanext.kan_linear_forward", x)
    return x.new_empty((x.shape[0], Wb.shape[1]))


def _grad_like(t: Tensor, need: bool) -> Tensor:
    """A backward op's gradient output of t's shape, as its kernel lays it
    out: contiguous; on the CPU, one not asked for is a stride-0 expansion of
    one zero (cpu::skipped_grad: no memory written per element)."""
    if need or t.device.type != "cpu":
        return t.new_empty(t.shape)
    return t.new_empty_strided(t.shape, (0,) * t.dim())


@torch.library.register_fake("kanext::kan_linear_backward")
def _(grad_y, x, grid, k, base, Wb, Wc, need_x, need_w, backend=0):
    # The kernel returns contiguous gradients whatever the inputs' strides.
    return _grad_like(x, need_x), _grad_like(Wb, need_w), _grad_like(Wc, need_w)


@torch.library.register_fake("kanext::fold_spline_weights")
def _(coef, scale):
    torch._check(coef.dim() == 3, lambda: f"kanext.fold_spline_weights: expected coef (in, out, G+k), got {tuple(coef.shape)}")
    return coef.new_empty((coef.shape[0], coef.shape[2], coef.shape[1]))


@torch.library.register_fake("kanext::fold_spline_weights_backward")
def _(grad_Wc, coef, scale):
    # grad_coef keeps coef's layout (KANLinear's is contiguous (in, out, G+k)).
    return torch.empty_like(coef), scale.new_empty(scale.shape)


@torch.library.register_fake("kanext::kan_linear_fused")
def _(x, grid, k, base, Wb, coef, scale, backend=0):
    _check_2d("kanext.kan_linear_fused", x)
    return x.new_empty((x.shape[0], Wb.shape[1]))


@torch.library.register_fake("kanext::kan_linear_fused_backward")
def _(grad_y, x, grid, k, base, Wb, coef, scale, need_x, need_w, backend=0):
    # contiguous gradients, grad_coef in coef's (in, out, G+k) shape
    return _grad_like(x, need_x), _grad_like(Wb, need_w), _grad_like(coef, need_w), _grad_like(scale, need_w)


@torch.library.register_fake("kanext::edge_stats")
def _(x, grid, k, base, Wb, Wc):
    _check_2d("kanext.edge_stats", x)
    shape = (x.shape[1], Wb.shape[1])
    return x.new_empty(shape), x.new_empty(shape), x.new_empty(shape)


@torch.library.register_fake("kanext::edge_stats_backward")
def _(g_sum, g_sq, g_abs, x, grid, k, base, Wb, Wc, need_x, need_w):
    return x.new_empty(x.shape), Wb.new_empty(Wb.shape), Wc.new_empty(Wc.shape)


@torch.library.register_fake("kanext::spline_activation")
def _(z, grid, k, base, coef, scale_base, scale_sp):
    torch._check(z.dim() == 2, lambda: f"kanext.spline_activation: expected z of shape (N, C), got {tuple(z.shape)}")
    return z.new_empty(z.shape)


@torch.library.register_fake("kanext::spline_activation_backward")
def _(grad_y, z, grid, k, base, coef, scale_base, scale_sp, need_z, need_w):
    return z.new_empty(z.shape), coef.new_empty(coef.shape), scale_base.new_empty(scale_base.shape), \
        scale_sp.new_empty(scale_sp.shape)


# ---------------------------------------------------------- derivative ops
def kan_linear_eval(x, v, grid, k, base, Wb, Wc, order: int) -> Tensor:
    """F_m: y[n, j] = sum_i v[n, i] phi^(m)_ij(x[n, i]) with m = order, v an
    optional (N, in) weight (None: 1) and phi_ij(t) = b(t) Wb[i, j] +
    sum_g B_g(t) Wc[i, g, j]; order 0 without v is :func:`kan_linear`.
    Differentiable to any order (kanext.autodiff)."""
    if x.dtype in _HALF and x.is_cpu:
        dt, x, grid, v, Wb, Wc = _f32("kanext.kan_linear_eval", "x grid v Wb Wc", x, grid, v, Wb, Wc)
        return kan_linear_eval(x, v, grid, k, base, Wb, Wc, order).to(dt)
    if transforms_active():
        return KanEval.apply(x, v, grid, k, _base_id(base), Wb, Wc, order, 0)
    return _ops.kan_linear_eval(x, v, grid, k, _base_id(base), Wb, Wc, order)


def kan_linear_transpose(dy, x, grid, k, base, Wb, Wc, order: int) -> Tensor:
    """T_m: gx[n, i] = sum_j dy[n, j] phi^(m)_ij(x[n, i]) (order 1 is kan_linear's grad_x)."""
    if x.dtype in _HALF and x.is_cpu:
        dt, x, grid, dy, Wb, Wc = _f32("kanext.kan_linear_transpose", "x grid dy Wb Wc", x, grid, dy, Wb, Wc)
        return kan_linear_transpose(dy, x, grid, k, base, Wb, Wc, order).to(dt)
    if transforms_active():
        return _ad.KanTranspose.apply(dy, x, grid, k, _base_id(base), Wb, Wc, order)
    return _ops.kan_linear_transpose(dy, x, grid, k, _base_id(base), Wb, Wc, order)


def kan_linear_wgrad(dy, x, v, grid, k, base, order: int) -> tuple[Tensor, Tensor]:
    """W_m: (sum_n v dy b^(m)(x), sum_n v dy B_g^(m)(x)) as (in, out) and
    (in, G+k, out) (order 0 without v is kan_linear's weight gradient)."""
    if x.dtype in _HALF and x.is_cpu:
        dt, x, grid, dy, v = _f32("kanext.kan_linear_wgrad", "x grid dy v", x, grid, dy, v)
        return _back(kan_linear_wgrad(dy, x, v, grid, k, base, order), dt)
    if transforms_active():
        return _ad.KanWgrad.apply(dy, x, v, grid, k, _base_id(base), order)
    return _ops.kan_linear_wgrad(dy, x, v, grid, k, _base_id(base), order)


def spline_activation_eval(z, grid, k, base, coef, scale_base, scale_sp, order: int) -> Tensor:
    """The order-m derivative in z of :func:`spline_activation`:
    scale_base b^(m)(z) + scale_sp sum_g coef B_g^(m)(z)."""
    if z.dtype in _HALF and z.is_cpu:
        dt, z, grid, coef, scale_base, scale_sp = _f32(
            "kanext.spline_activation_eval", "z grid coef scale_base scale_sp", z, grid, coef, scale_base, scale_sp)
        return spline_activation_eval(z, grid, k, base, coef, scale_base, scale_sp, order).to(dt)
    if transforms_active():
        return _ad.ActEval.apply(z, grid, k, _base_id(base), coef, scale_base, scale_sp, order)
    return _ops.spline_activation_eval(z, grid, k, _base_id(base), coef, scale_base, scale_sp, order)


def spline_activation_wgrad(gy, z, grid, k, base, order: int) -> tuple[Tensor, Tensor]:
    """(SB (C, G+k), Sb (C,)): sum_n gy B_g^(m)(z) and sum_n gy b^(m)(z) per channel."""
    if z.dtype in _HALF and z.is_cpu:
        dt, z, grid, gy = _f32("kanext.spline_activation_wgrad", "z grid gy", z, grid, gy)
        return _back(spline_activation_wgrad(gy, z, grid, k, base, order), dt)
    if transforms_active():
        return _ad.ActWgrad.apply(gy, z, grid, k, _base_id(base), order)
    return _ops.spline_activation_wgrad(gy, z, grid, k, _base_id(base), order)


@torch.library.register_fake("kanext::kan_linear_eval")
def _(x, v, grid, k, base, Wb, Wc, order):
    _check_2d("kanext.kan_linear_eval", x)
    return x.new_empty((x.shape[0], Wb.shape[1]))


@torch.library.register_fake("kanext::kan_linear_transpose")
def _(dy, x, grid, k, base, Wb, Wc, order):
    return x.new_empty(x.shape)


@torch.library.register_fake("kanext::kan_linear_wgrad")
def _(dy, x, v, grid, k, base, order):
    nb = grid.shape[1] - k - 1
    return x.new_empty((x.shape[1], dy.shape[1])), x.new_empty((x.shape[1], nb, dy.shape[1]))


@torch.library.register_fake("kanext::spline_activation_eval")
def _(z, grid, k, base, coef, scale_base, scale_sp, order):
    return z.new_empty(z.shape)


@torch.library.register_fake("kanext::spline_activation_wgrad")
def _(gy, z, grid, k, base, order):
    return z.new_empty((z.shape[1], grid.shape[1] - k - 1)), z.new_empty((z.shape[1],))


def edge_product(x, grid, k, base, Wb, Wc, Vb, Vc, mode: int, c: int, a: int) -> Tensor:
    """P[n, i] = sum_j w_ij(x[n, i]) psi^(a)_ij(x[n, i]), with psi^(a) the order-a
    derivative of the edge activation with weights (Vb, Vc) and w = sign(phi)
    (mode 0, c = 0) or phi^(c) (mode 1), phi that with weights (Wb, Wc). The
    terms of edge_stats' second and higher derivatives; NaN x give 0.
    Differentiable to any order (kanext.autodiff)."""
    if x.dtype in _HALF and x.is_cpu:
        dt, x, grid, Wb, Wc, Vb, Vc = _f32("kanext.edge_product", "x grid Wb Wc Vb Vc", x, grid, Wb, Wc, Vb, Vc)
        return edge_product(x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a).to(dt)
    if transforms_active():
        return _ad.EdgeProduct.apply(x, grid, k, _base_id(base), Wb, Wc, Vb, Vc, mode, c, a)
    return _ops.edge_product(x, grid, k, _base_id(base), Wb, Wc, Vb, Vc, mode, c, a)


def edge_product_wgrad(x, u, grid, k, base, Wb, Wc, mode: int, c: int, a: int) -> tuple[Tensor, Tensor]:
    """(Sb (in, out), SB (in, G+k, out)): sum_n u[n, i] w_ij(x[n, i]) b^(a)(x[n, i])
    and sum_n u w_ij B_g^(a)(x[n, i]), w as in :func:`edge_product` (u None: 1)."""
    if x.dtype in _HALF and x.is_cpu:
        dt, x, grid, u, Wb, Wc = _f32("kanext.edge_product_wgrad", "x grid u Wb Wc", x, grid, u, Wb, Wc)
        return _back(edge_product_wgrad(x, u, grid, k, base, Wb, Wc, mode, c, a), dt)
    if transforms_active():
        return _ad.EdgeProductWgrad.apply(x, u, grid, k, _base_id(base), Wb, Wc, mode, c, a)
    return _ops.edge_product_wgrad(x, u, grid, k, _base_id(base), Wb, Wc, mode, c, a)


@torch.library.register_fake("kanext::edge_product")
def _(x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a):
    _check_2d("kanext.edge_product", x)
    return x.new_empty(x.shape)


@torch.library.register_fake("kanext::edge_product_wgrad")
def _(x, u, grid, k, base, Wb, Wc, mode, c, a):
    _check_2d("kanext.edge_product_wgrad", x)
    return x.new_empty(Wb.shape), x.new_empty(Wc.shape)
