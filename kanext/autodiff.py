"""Derivatives of every order, and torch.func, for every kanext op.

Long file: one autograd.Function per op family (the backward, jvp and vmap
rules of an op belong together, and each rule is written in terms of the
others), so the family is read in one place.

Every derivative of a KAN layer is a contraction of the same shape as the
forward with a derivative of the edge activation
phi_ij(t) = b(t) Wb[i, j] + sum_g B_g(t) Wc[i, g, j] (csrc/ops.cpp): the ops
kan_linear_eval (F_m), kan_linear_transpose (T_m) and kan_linear_wgrad (W_m)
at derivative order m. With v an optional (N, in) weight:

    F_m(x, v, W):   dx = v T_{m+1}(gy, x, W),  dv = T_m(gy, x, W),  dW = W_m(gy, x, v)
    T_m(dy, x, W):  ddy = F_m(x, g, W),  dx = g T_{m+1}(dy, x, W),  dW = W_m(dy, x, g)
    W_m(dy, x, v):  ddy = F_m(x, v, G),  dx = v T_{m+1}(dy, x, G),  dv = T_m(dy, x, G)

(g the incoming (N, in) gradient, G = (G_b, G_c) the incoming weight
gradients), so the family is closed under differentiation: derivatives of any
order, each one fused pass with no (N, in, G+k) or (N, in, out) tensor. The
B-spline terms are exact for m <= k and zero beyond; the silu base's
derivatives come from the kernel (csrc/include/kanext/bspline.h), up to order
10. spline_activation has the same structure per channel, and spline_basis's
derivatives are spline_basis_deriv of the next order.

The classes are torch.autograd.Functions with setup_context, backward, jvp and
vmap, so plain autograd (any order, create_graph), torch.func (grad, vjp, jvp,
jacrev, jacfwd, hessian, vmap, functional_call) and torch.compile all see the
same rules. They are also the raw ops' Autograd kernels (registered below), so
``torch.ops.kanext.<op>`` differentiates the same way in plain autograd. Three
hot ops keep a C++ autograd for speed (csrc/autograd.cpp: kan_linear_forward,
fold_spline_weights and kan_linear_fused, the two in one). Under a torch.func
transform the kanext.ops wrappers
(and so the modules) call these Functions directly; a raw torch.ops.kanext
call under a transform raises a clear error.

edge_stats' first derivative is its fused backward; its higher derivatives
and forward mode are composed from two more op families, edge_product and
edge_product_wgrad (see the edge_stats section), again closed under
differentiation. Plain forward-mode AD (torch.autograd.forward_ad) takes the
same jvp rules: the kanext.ops wrappers route to these Functions inside a dual
level, and the raw ops' Autograd kernels do too.

Not supported, with a clear error: gradients with respect to grids; forward
mode through the raw C++-autograd op torch.ops.kanext.kan_linear_forward (use
kanext.ops.kan_linear or the modules).

bfloat16 / float16 CPU tensors never reach these Functions: the kanext.ops
wrappers upcast them to float32 first and round the results back with
ordinary (differentiable) casts, so every rule here, and every derivative
order, applies to them unchanged. A raw torch.ops.kanext call with 16-bit
CPU tensors is refused by the kernel's dtype check.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import forward_ad as _fwad

from . import _C  # noqa: F401  (registers the ops)

__all__ = [
    "transforms_active",
    "BasisDeriv",
    "KanEval",
    "KanTranspose",
    "KanWgrad",
    "KanBackward",
    "ActEval",
    "ActWgrad",
    "ActBackward",
    "EdgeStats",
    "EdgeProduct",
    "EdgeProductWgrad",
    "edge_stats_grads",
    "fold_dense",
]

_ops = torch.ops.kanext


def _dual_level_active() -> bool:
    """Whether plain forward-mode AD is on (inside
    torch.autograd.forward_ad.dual_level()), where dual tensors carry
    tangents without requires_grad."""
    return _fwad._current_level >= 0


def transforms_active() -> bool:
    """Whether a torch.func transform (grad, vjp, jvp, vmap, ...) or plain
    forward-mode AD (torch.autograd.forward_ad) is active: the kanext.ops
    wrappers then call the Functions below, whose jvp rules carry tangents
    (the C++ fast paths and a raw op's kernel would drop them). torch.compile
    traces it as a constant. Raises for nested forward-mode levels
    (_refuse_stacked_forward_levels)."""
    if torch._C._are_functorch_transforms_active():
        _refuse_stacked_forward_levels()
        return True
    return _dual_level_active()


def _refuse_stacked_forward_levels() -> None:
    """Raises where two or more forward-mode levels are nested (torch.func
    jvp / jacfwd, the forward half of hessian), whatever reverse levels sit
    between them: jacfwd(jacfwd(f)),
    jacfwd(hessian(f)), hessian(hessian(f)) ... The jvp rules of these
    autograd.Functions under torch.func (torch 2.13) lose tangents there:
    third derivatives came out 0 or wrong by the size of the value, and even
    second ones of a LAN (jacfwd(jacfwd)) were off by 1e-2, with no error.
    With at most one forward level (jvp, jacfwd, hessian = jacfwd(jacrev),
    and any reverse levels around or inside it) every nesting of up to four
    levels of KANLinear, KAN and LAN equals reverse mode (tests/
    test_derivatives.py, test_nested_forward_levels). vmap levels do not
    count."""
    from torch._C._functorch import TransformType
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    kinds = [i.key() for i in retrieve_all_functorch_interpreters()
             if i.key() in (TransformType.Jvp, TransformType.Grad)]
    if sum(t == TransformType.Jvp for t in kinds) >= 2:
        order = "".join("F" if t == TransformType.Jvp else "R" for t in kinds)
        raise NotImplementedError(
            "kanext: nested forward-mode derivatives (two or more levels of torch.func.jvp / jacfwd, or the "
            "forward half of hessian) are not supported: PyTorch's "
            "forward-mode rules for autograd.Function lose tangents there and the result would be wrong "
            f"(derivative levels outermost first, F = forward, R = reverse: {order}). Keep at most one "
            "forward level and use reverse mode (jacrev, grad, vjp) for the others, e.g. jacrev(hessian(f)) "
            "or jacrev(jacrev(jacrev(f))) instead of jacfwd(hessian(f)).")


def _below(op, *args):
    """The op's kernel, below the Autograd key (so not back into these rules)."""
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)


def _no_grid_grad(name: str, needs: bool) -> None:
    if needs:
        raise RuntimeError(f"kanext.{name}: gradients with respect to grid are not supported")


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _mul(v: Tensor | None, t: Tensor) -> Tensor:
    return t if v is None else v * t


# ----------------------------------------------------------------- vmap rules
def _vmap_rows(fn, info, in_dims, args, row_args, n_out):
    """vmap over an op whose row arguments (positions row_args, each (N, ...))
    are independent per row: when only those are batched, the batch is merged
    into N (one call); otherwise one call per batch element."""
    batched = [i for i, d in enumerate(in_dims) if d is not None]
    if batched and all(i in row_args for i in batched):
        B = info.batch_size
        new = list(args)
        N = None
        for i in row_args:
            a = args[i]
            if a is None:
                continue
            if in_dims[i] is None:
                a = a.unsqueeze(0).expand(B, *a.shape)
            else:
                a = a.movedim(in_dims[i], 0)
            N = a.shape[1]
            new[i] = a.reshape(B * a.shape[1], *a.shape[2:])
        out = fn(*new)
        if n_out == 1:
            return out.reshape(B, N, *out.shape[1:]), 0
        return tuple(o.reshape(B, N, *o.shape[1:]) for o in out), (0,) * n_out
    return _vmap_loop(fn, info, in_dims, args, n_out)


def _vmap_loop(fn, info, in_dims, args, n_out):
    """vmap by one call per batch element (reductions over N, batched weights)."""
    outs = []
    for b in range(info.batch_size):
        outs.append(fn(*[a if d is None else a.select(d, b) for a, d in zip(args, in_dims)]))
    if n_out == 1:
        return torch.stack(outs), 0
    return tuple(torch.stack([o[t] for o in outs]) for t in range(n_out)), (0,) * n_out


def _save(ctx, *tensors):
    """Saves for backward and jvp. Grads and tangents are not materialised:
    an input without a tangent (a grid) gets None in jvp, and an output
    without a gradient None in backward (see _z)."""
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(*tensors)
    ctx.save_for_forward(*tensors)


def _z(g: Tensor | None, like: Tensor) -> Tensor:
    """An incoming gradient, zeros where none came."""
    return torch.zeros_like(like) if g is None else g


# --------------------------------------------------------------- spline_basis
class BasisDeriv(torch.autograd.Function):
    """spline_basis (m = 0) and its m-th derivatives spline_basis_deriv."""

    @staticmethod
    def forward(x, grid, k, m):
        if m == 0:
            return _below(_ops.spline_basis, x, grid, k)
        return _below(_ops.spline_basis_deriv, x, grid, k, m)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, grid, k, m = inputs
        _save(ctx, x, grid)
        ctx.k, ctx.m = k, m

    @staticmethod
    def backward(ctx, g):
        if g is None:
            return None, None, None, None
        x, grid = ctx.saved_tensors
        _no_grid_grad("spline_basis", ctx.needs_input_grad[1])
        gx = (g * BasisDeriv.apply(x, grid, ctx.k, ctx.m + 1)).sum(-1) if ctx.needs_input_grad[0] else None
        return gx, None, None, None

    @staticmethod
    def jvp(ctx, tx, tgrid, _k, _m):
        x, grid = ctx.saved_tensors
        _no_grid_grad("spline_basis", tgrid is not None)
        return tx.unsqueeze(-1) * BasisDeriv.apply(x, grid, ctx.k, ctx.m + 1)

    @staticmethod
    def vmap(info, in_dims, x, grid, k, m):
        return _vmap_rows(lambda *a: BasisDeriv.apply(*a), info, in_dims, (x, grid, k, m), (0,), 1)


# ----------------------------------------------------------------- kan_linear
class KanEval(torch.autograd.Function):
    """F_m(x, v, W)[n, j] = sum_i v[n, i] phi^(m)_ij(x[n, i]); m = 0 without v is
    the layer's forward (the tuned kan_linear_forward kernels, with backend)."""

    @staticmethod
    def forward(x, v, grid, k, base, Wb, Wc, m, backend):
        if m == 0 and v is None:
            return _below(_ops.kan_linear_forward, x, grid, k, base, Wb, Wc, backend)
        return _below(_ops.kan_linear_eval, x, v, grid, k, base, Wb, Wc, m)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, v, grid, k, base, Wb, Wc, m, backend = inputs
        _save(ctx, x, v, grid, Wb, Wc)
        ctx.args = (k, base, m, backend)

    @staticmethod
    def backward(ctx, gy):
        if gy is None:
            return (None,) * 9
        x, v, grid, Wb, Wc = ctx.saved_tensors
        k, base, m, backend = ctx.args
        need = ctx.needs_input_grad
        _no_grid_grad("kan_linear", need[2])
        need_w = need[5] or need[6]
        gx = gv = gWb = gWc = None
        if m == 0 and v is None:
            # the fused first-order backward, itself differentiable (KanBackward)
            gx, gWb, gWc = KanBackward.apply(gy, x, grid, k, base, Wb, Wc, need[0], need_w, backend)
        else:
            if need[0]:
                gx = _mul(v, KanTranspose.apply(gy, x, grid, k, base, Wb, Wc, m + 1))
            if need[1]:
                gv = KanTranspose.apply(gy, x, grid, k, base, Wb, Wc, m)
            if need_w:
                gWb, gWc = KanWgrad.apply(gy, x, v, grid, k, base, m)
        return (gx if need[0] else None, gv, None, None, None, gWb if need[5] else None,
                gWc if need[6] else None, None, None)

    @staticmethod
    def jvp(ctx, tx, tv, tgrid, _k, _base, tWb, tWc, _m, _backend):
        x, v, grid, Wb, Wc = ctx.saved_tensors
        k, base, m, backend = ctx.args
        _no_grid_grad("kan_linear", tgrid is not None)
        out = None
        if tx is not None:
            out = KanEval.apply(x, _mul(v, tx), grid, k, base, Wb, Wc, m + 1, backend)
        if tv is not None:
            out = _add(out, KanEval.apply(x, tv, grid, k, base, Wb, Wc, m, backend))
        if tWb is not None or tWc is not None:
            tb = torch.zeros_like(Wb) if tWb is None else tWb
            tc = torch.zeros_like(Wc) if tWc is None else tWc
            out = _add(out, KanEval.apply(x, v, grid, k, base, tb, tc, m, backend))
        return out

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_rows(lambda *a: KanEval.apply(*a), info, in_dims, args, (0, 1), 1)


class KanTranspose(torch.autograd.Function):
    """T_m(dy, x, W)[n, i] = sum_j dy[n, j] phi^(m)_ij(x[n, i])."""

    @staticmethod
    def forward(dy, x, grid, k, base, Wb, Wc, m):
        return _below(_ops.kan_linear_transpose, dy, x, grid, k, base, Wb, Wc, m)

    @staticmethod
    def setup_context(ctx, inputs, output):
        dy, x, grid, k, base, Wb, Wc, m = inputs
        _save(ctx, dy, x, grid, Wb, Wc)
        ctx.args = (k, base, m)

    @staticmethod
    def backward(ctx, g):
        if g is None:
            return (None,) * 8
        dy, x, grid, Wb, Wc = ctx.saved_tensors
        k, base, m = ctx.args
        need = ctx.needs_input_grad
        _no_grid_grad("kan_linear", need[2])
        gdy = KanEval.apply(x, g, grid, k, base, Wb, Wc, m, 0) if need[0] else None
        gx = g * KanTranspose.apply(dy, x, grid, k, base, Wb, Wc, m + 1) if need[1] else None
        gWb = gWc = None
        if need[5] or need[6]:
            gWb, gWc = KanWgrad.apply(dy, x, g, grid, k, base, m)
        return gdy, gx, None, None, None, gWb if need[5] else None, gWc if need[6] else None, None

    @staticmethod
    def jvp(ctx, tdy, tx, tgrid, _k, _base, tWb, tWc, _m):
        dy, x, grid, Wb, Wc = ctx.saved_tensors
        k, base, m = ctx.args
        _no_grid_grad("kan_linear", tgrid is not None)
        out = None
        if tdy is not None:
            out = KanTranspose.apply(tdy, x, grid, k, base, Wb, Wc, m)
        if tx is not None:
            out = _add(out, tx * KanTranspose.apply(dy, x, grid, k, base, Wb, Wc, m + 1))
        if tWb is not None or tWc is not None:
            tb = torch.zeros_like(Wb) if tWb is None else tWb
            tc = torch.zeros_like(Wc) if tWc is None else tWc
            out = _add(out, KanTranspose.apply(dy, x, grid, k, base, tb, tc, m))
        return out

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_rows(lambda *a: KanTranspose.apply(*a), info, in_dims, args, (0, 1), 1)


class KanWgrad(torch.autograd.Function):
    """W_m(dy, x, v) = (gWb, gWc): sum_n v[n, i] dy[n, j] b^(m)(x[n, i]) and
    sum_n v[n, i] dy[n, j] B_g^(m)(x[n, i])."""

    @staticmethod
    def forward(dy, x, v, grid, k, base, m):
        return _below(_ops.kan_linear_wgrad, dy, x, v, grid, k, base, m)

    @staticmethod
    def setup_context(ctx, inputs, output):
        dy, x, v, grid, k, base, m = inputs
        _save(ctx, dy, x, v, grid)
        ctx.args = (k, base, m)

    @staticmethod
    def backward(ctx, GB, GC):
        dy, x, v, grid = ctx.saved_tensors
        k, base, m = ctx.args
        GB = _z(GB, x.new_empty(x.shape[1], dy.shape[1]))
        GC = _z(GC, x.new_empty(x.shape[1], grid.shape[1] - k - 1, dy.shape[1]))
        need = ctx.needs_input_grad
        _no_grid_grad("kan_linear", need[3])
        gdy = KanEval.apply(x, v, grid, k, base, GB, GC, m, 0) if need[0] else None
        gx = _mul(v, KanTranspose.apply(dy, x, grid, k, base, GB, GC, m + 1)) if need[1] else None
        gv = KanTranspose.apply(dy, x, grid, k, base, GB, GC, m) if need[2] else None
        return gdy, gx, gv, None, None, None, None

    @staticmethod
    def jvp(ctx, tdy, tx, tv, tgrid, _k, _base, _m):
        dy, x, v, grid = ctx.saved_tensors
        k, base, m = ctx.args
        _no_grid_grad("kan_linear", tgrid is not None)
        out = None
        for term in (
            KanWgrad.apply(tdy, x, v, grid, k, base, m) if tdy is not None else None,
            KanWgrad.apply(dy, x, _mul(v, tx), grid, k, base, m + 1) if tx is not None else None,
            KanWgrad.apply(dy, x, tv, grid, k, base, m) if tv is not None else None,
        ):
            if term is not None:
                out = term if out is None else (out[0] + term[0], out[1] + term[1])
        return out

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_loop(lambda *a: KanWgrad.apply(*a), info, in_dims, args, 2)


class KanBackward(torch.autograd.Function):
    """kan_linear_forward's fused backward (T_1 and W_0 in one pass), as a
    differentiable function: (gx, gWb, gWc); outputs not asked for are zeros."""

    @staticmethod
    def forward(gy, x, grid, k, base, Wb, Wc, need_x, need_w, backend):
        # Skipped outputs come from the CPU kernel as stride-0 zeros; here they
        # are made dense: forward-mode AD (jvp, torch.func) writes an output's
        # tangent into a tensor of the output's strides, which stride 0 refuses.
        out = _below(_ops.kan_linear_backward, gy, x, grid, k, base, Wb, Wc, need_x, need_w, backend)
        return tuple(t if t.is_contiguous() else t.contiguous() for t in out)

    @staticmethod
    def setup_context(ctx, inputs, output):
        gy, x, grid, k, base, Wb, Wc, need_x, need_w, backend = inputs
        _save(ctx, gy, x, grid, Wb, Wc)
        ctx.args = (k, base, need_x, need_w)

    @staticmethod
    def backward(ctx, ggx, ggWb, ggWc):
        gy, x, grid, Wb, Wc = ctx.saved_tensors
        k, base, need_x, need_w = ctx.args
        need_x = need_x and ggx is not None
        need_w = need_w and (ggWb is not None or ggWc is not None)
        ggWb, ggWc = _z(ggWb, Wb), _z(ggWc, Wc)
        need = ctx.needs_input_grad
        _no_grid_grad("kan_linear", need[2])
        ggy = gx = gWb = gWc = None
        if need_x:  # gx = T_1(gy, x, W)
            if need[0]:
                ggy = KanEval.apply(x, ggx, grid, k, base, Wb, Wc, 1, 0)
            if need[1]:
                gx = ggx * KanTranspose.apply(gy, x, grid, k, base, Wb, Wc, 2)
            if need[5] or need[6]:
                gWb, gWc = KanWgrad.apply(gy, x, ggx, grid, k, base, 1)
        if need_w:  # (gWb, gWc) = W_0(gy, x)
            if need[0]:
                ggy = _add(ggy, KanEval.apply(x, None, grid, k, base, ggWb, ggWc, 0, 0))
            if need[1]:
                gx = _add(gx, KanTranspose.apply(gy, x, grid, k, base, ggWb, ggWc, 1))
        return (ggy, gx, None, None, None, gWb if need[5] else None, gWc if need[6] else None, None, None, None)

    @staticmethod
    def jvp(ctx, tgy, tx, tgrid, _k, _base, tWb, tWc, _nx, _nw, _b):
        gy, x, grid, Wb, Wc = ctx.saved_tensors
        k, base, need_x, need_w = ctx.args
        _no_grid_grad("kan_linear", tgrid is not None)
        tgx = None
        if need_x:
            if tgy is not None:
                tgx = KanTranspose.apply(tgy, x, grid, k, base, Wb, Wc, 1)
            if tx is not None:
                tgx = _add(tgx, tx * KanTranspose.apply(gy, x, grid, k, base, Wb, Wc, 2))
            if tWb is not None or tWc is not None:
                tgx = _add(tgx, KanTranspose.apply(gy, x, grid, k, base, _z(tWb, Wb), _z(tWc, Wc), 1))
        tgb = tgc = None
        if need_w:
            for term in (KanWgrad.apply(tgy, x, None, grid, k, base, 0) if tgy is not None else None,
                         KanWgrad.apply(gy, x, tx, grid, k, base, 1) if tx is not None else None):
                if term is not None:
                    tgb, tgc = _add(tgb, term[0]), _add(tgc, term[1])
        tgx, tgb, tgc = _z(tgx, x), _z(tgb, Wb), _z(tgc, Wc)
        return tgx, tgb, tgc

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_loop(lambda *a: KanBackward.apply(*a), info, in_dims, args, 3)


def fold_dense(coef: Tensor, scale: Tensor) -> Tensor:
    """fold_spline_weights in plain PyTorch ops (what kanext.ops uses under a
    torch.func transform): Wc[i, g, j] = scale[i, j] coef[i, j, g]."""
    return (coef * scale.unsqueeze(-1)).transpose(1, 2)


# ----------------------------------------------------------- spline_activation
def _act_weight_grads(SB, Sb, coef, sp, need):
    """Gradients of (coef, scale_base, scale_sp) from the raw sums SB (C, G+k), Sb (C)."""
    return (sp.unsqueeze(-1) * SB if need[0] else None, Sb if need[1] else None,
            (coef * SB).sum(-1) if need[2] else None)


class ActEval(torch.autograd.Function):
    """a_m(z)[n, c] = scale_base[c] b^(m)(z) + scale_sp[c] sum_g coef[c, g] B_g^(m)(z);
    m = 0 is spline_activation (its tuned kernels)."""

    @staticmethod
    def forward(z, grid, k, base, coef, sb, sp, m):
        if m == 0:
            return _below(_ops.spline_activation, z, grid, k, base, coef, sb, sp)
        return _below(_ops.spline_activation_eval, z, grid, k, base, coef, sb, sp, m)

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, grid, k, base, coef, sb, sp, m = inputs
        _save(ctx, z, grid, coef, sb, sp)
        ctx.args = (k, base, m)

    @staticmethod
    def backward(ctx, gy):
        if gy is None:
            return (None,) * 8
        z, grid, coef, sb, sp = ctx.saved_tensors
        k, base, m = ctx.args
        need = ctx.needs_input_grad
        _no_grid_grad("spline_activation", need[1])
        if m == 0:
            gz, gc, gsb, gsp = ActBackward.apply(gy, z, grid, k, base, coef, sb, sp, need[0], any(need[4:7]))
            return (gz if need[0] else None, None, None, None, gc if need[4] else None,
                    gsb if need[5] else None, gsp if need[6] else None, None)
        gz = gy * ActEval.apply(z, grid, k, base, coef, sb, sp, m + 1) if need[0] else None
        gc = gsb = gsp = None
        if any(need[4:7]):
            SB, Sb = ActWgrad.apply(gy, z, grid, k, base, m)
            gc, gsb, gsp = _act_weight_grads(SB, Sb, coef, sp, need[4:7])
        return gz, None, None, None, gc, gsb, gsp, None

    @staticmethod
    def jvp(ctx, tz, tgrid, _k, _base, tcoef, tsb, tsp, _m):
        z, grid, coef, sb, sp = ctx.saved_tensors
        k, base, m = ctx.args
        _no_grid_grad("spline_activation", tgrid is not None)
        out = tz * ActEval.apply(z, grid, k, base, coef, sb, sp, m + 1) if tz is not None else None
        if tcoef is not None or tsb is not None or tsp is not None:
            c = _add(None if tcoef is None else sp.unsqueeze(-1) * tcoef,
                     None if tsp is None else tsp.unsqueeze(-1) * coef)
            out = _add(out, ActEval.apply(z, grid, k, base, torch.zeros_like(coef) if c is None else c,
                                          torch.zeros_like(sb) if tsb is None else tsb, torch.ones_like(sp), m))
        return out

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_rows(lambda *a: ActEval.apply(*a), info, in_dims, args, (0,), 1)


class ActWgrad(torch.autograd.Function):
    """(SB, Sb): SB[c, g] = sum_n gy[n, c] B_g^(m)(z[n, c]), Sb[c] = sum_n gy[n, c] b^(m)(z[n, c])."""

    @staticmethod
    def forward(gy, z, grid, k, base, m):
        return _below(_ops.spline_activation_wgrad, gy, z, grid, k, base, m)

    @staticmethod
    def setup_context(ctx, inputs, output):
        gy, z, grid, k, base, m = inputs
        _save(ctx, gy, z, grid)
        ctx.args = (k, base, m)

    @staticmethod
    def backward(ctx, HB, Hb):
        gy, z, grid = ctx.saved_tensors
        k, base, m = ctx.args
        HB = _z(HB, z.new_empty(z.shape[1], grid.shape[1] - k - 1))
        Hb = _z(Hb, z.new_empty(z.shape[1]))
        need = ctx.needs_input_grad
        _no_grid_grad("spline_activation", need[2])
        ones = torch.ones_like(Hb)
        ggy = ActEval.apply(z, grid, k, base, HB, Hb, ones, m) if need[0] else None
        gz = gy * ActEval.apply(z, grid, k, base, HB, Hb, ones, m + 1) if need[1] else None
        return ggy, gz, None, None, None, None

    @staticmethod
    def jvp(ctx, tgy, tz, tgrid, _k, _base, _m):
        gy, z, grid = ctx.saved_tensors
        k, base, m = ctx.args
        _no_grid_grad("spline_activation", tgrid is not None)
        out = None
        for term in (ActWgrad.apply(tgy, z, grid, k, base, m) if tgy is not None else None,
                     ActWgrad.apply(gy * tz, z, grid, k, base, m + 1) if tz is not None else None):
            if term is not None:
                out = term if out is None else (out[0] + term[0], out[1] + term[1])
        return out

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_loop(lambda *a: ActWgrad.apply(*a), info, in_dims, args, 2)


class ActBackward(torch.autograd.Function):
    """spline_activation's fused backward as a differentiable function:
    (gz, gcoef, gscale_base, gscale_sp) = (gy a_1(z), sp SB_0, Sb_0, sum_g coef SB_0)
    with SB_0, Sb_0 = ActWgrad(gy, z, order 0); outputs not asked for are zeros."""

    @staticmethod
    def forward(gy, z, grid, k, base, coef, sb, sp, need_z, need_w):
        return _below(_ops.spline_activation_backward, gy, z, grid, k, base, coef, sb, sp, need_z, need_w)

    @staticmethod
    def setup_context(ctx, inputs, output):
        gy, z, grid, k, base, coef, sb, sp, need_z, need_w = inputs
        _save(ctx, gy, z, grid, coef, sb, sp)
        ctx.args = (k, base, need_z, need_w)

    @staticmethod
    def backward(ctx, ggz, ggc, ggsb, ggsp):
        gy, z, grid, coef, sb, sp = ctx.saved_tensors
        k, base, need_z, need_w = ctx.args
        need_z = need_z and ggz is not None
        need_w = need_w and (ggc is not None or ggsb is not None or ggsp is not None)
        ggc, ggsb, ggsp = _z(ggc, coef), _z(ggsb, sb), _z(ggsp, sp)
        need = ctx.needs_input_grad
        _no_grid_grad("spline_activation", need[2])
        wneed = need[5:8]
        ggy = gz = gc = gsb = gsp = None
        if need_z:  # gz = gy a_1(z; coef, sb, sp)
            if need[0]:
                ggy = ggz * ActEval.apply(z, grid, k, base, coef, sb, sp, 1)
            if need[1]:
                gz = ggz * gy * ActEval.apply(z, grid, k, base, coef, sb, sp, 2)
            if any(wneed):
                SB1, Sb1 = ActWgrad.apply(ggz * gy, z, grid, k, base, 1)
                gc, gsb, gsp = _act_weight_grads(SB1, Sb1, coef, sp, wneed)
        if need_w:  # the weight gradients are linear in gy: <H, grads> = sum_n gy a_0(z; HB, Hb, 1)
            HB = sp.unsqueeze(-1) * ggc + ggsp.unsqueeze(-1) * coef
            ones = torch.ones_like(sp)
            if need[0]:
                ggy = _add(ggy, ActEval.apply(z, grid, k, base, HB, ggsb, ones, 0))
            if need[1]:
                gz = _add(gz, gy * ActEval.apply(z, grid, k, base, HB, ggsb, ones, 1))
            if wneed[0] or wneed[2]:
                SB0, _ = ActWgrad.apply(gy, z, grid, k, base, 0)
                if wneed[0]:
                    gc = _add(gc, ggsp.unsqueeze(-1) * SB0)
                if wneed[2]:
                    gsp = _add(gsp, (ggc * SB0).sum(-1))
        return ggy, gz, None, None, None, gc, gsb, gsp, None, None

    @staticmethod
    def jvp(ctx, tgy, tz, tgrid, _k, _base, tcoef, tsb, tsp, _nz, _nw):
        gy, z, grid, coef, sb, sp = ctx.saved_tensors
        k, base, need_z, need_w = ctx.args
        _no_grid_grad("spline_activation", tgrid is not None)
        tgz = torch.zeros_like(z)
        if need_z:
            t = None
            if tgy is not None:
                t = tgy * ActEval.apply(z, grid, k, base, coef, sb, sp, 1)
            if tz is not None:
                t = _add(t, gy * tz * ActEval.apply(z, grid, k, base, coef, sb, sp, 2))
            if tcoef is not None or tsb is not None or tsp is not None:
                c = _add(None if tcoef is None else sp.unsqueeze(-1) * tcoef,
                         None if tsp is None else tsp.unsqueeze(-1) * coef)
                t = _add(t, gy * ActEval.apply(z, grid, k, base, torch.zeros_like(coef) if c is None else c,
                                               torch.zeros_like(sb) if tsb is None else tsb, torch.ones_like(sp), 1))
            tgz = tgz if t is None else t
        tgc, tgsb, tgsp = torch.zeros_like(coef), torch.zeros_like(sb), torch.zeros_like(sp)
        if need_w:
            SB0, _ = ActWgrad.apply(gy, z, grid, k, base, 0)
            dSB = dSb = None  # tangents of the raw sums
            for term in (ActWgrad.apply(tgy, z, grid, k, base, 0) if tgy is not None else None,
                         ActWgrad.apply(gy * tz, z, grid, k, base, 1) if tz is not None else None):
                if term is not None:
                    dSB, dSb = _add(dSB, term[0]), _add(dSb, term[1])
            if dSB is not None:
                tgc = tgc + sp.unsqueeze(-1) * dSB
                tgsb = tgsb + dSb
                tgsp = tgsp + (coef * dSB).sum(-1)
            if tsp is not None:
                tgc = tgc + tsp.unsqueeze(-1) * SB0
            if tcoef is not None:
                tgsp = tgsp + (tcoef * SB0).sum(-1)
        return tgz, tgc, tgsb, tgsp

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_loop(lambda *a: ActBackward.apply(*a), info, in_dims, args, 4)


# ----------------------------------------------------------------- edge_stats
# edge_stats' derivatives beyond the first are built from two ops: with phi
# the edge activation with weights W, psi that with weights V and
# w = sign(phi) (mode 0) or phi^(c) (mode 1),
#
#     E_c,a(x; W, V)[n, i] = sum_j w_ij psi^(a)_ij                (EdgeProduct)
#     S_c,a(x, u; W)       = sum_n u w B~^(a)  (B~ = (b, B_g))     (EdgeProductWgrad)
#
# closed under differentiation (sign(phi) has derivative 0 almost
# everywhere; in mode 1 E is bilinear in (W, V) and S linear in W):
#
#     E:  dx = g (E_c,a+1 + E_c+1,a),  dV = S_c,a(x, g; W),  dW = S_a,c(x, g; V)
#     S:  du = E_c,a(x; W, G),  dx = u (E_c,a+1 + E_c+1,a)(x; W, G),  dW = S_a,c(x, u; G)
#
# (the E_c+1,a and dW terms in mode 1 only).
class EdgeProduct(torch.autograd.Function):
    """E_c,a(x; W, V)[n, i] = sum_j w_ij(x[n, i]) psi^(a)_ij(x[n, i])."""

    @staticmethod
    def forward(x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a):
        return _below(_ops.edge_product, x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a = inputs
        _save(ctx, x, grid, Wb, Wc, Vb, Vc)
        ctx.args = (k, base, mode, c, a)

    @staticmethod
    def backward(ctx, g):
        if g is None:
            return (None,) * 11
        x, grid, Wb, Wc, Vb, Vc = ctx.saved_tensors
        k, base, mode, c, a = ctx.args
        need = ctx.needs_input_grad
        _no_grid_grad("edge_stats", need[1])
        gx = g * _product_dx(x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a) if need[0] else None
        gWb = gWc = gVb = gVc = None
        if mode == 1 and (need[4] or need[5]):
            gWb, gWc = EdgeProductWgrad.apply(x, g, grid, k, base, Vb, Vc, 1, a, c)
        if need[6] or need[7]:
            gVb, gVc = EdgeProductWgrad.apply(x, g, grid, k, base, Wb, Wc, mode, c, a)
        return gx, None, None, None, gWb, gWc, gVb, gVc, None, None, None

    @staticmethod
    def jvp(ctx, tx, tgrid, _k, _base, tWb, tWc, tVb, tVc, _mode, _c, _a):
        x, grid, Wb, Wc, Vb, Vc = ctx.saved_tensors
        k, base, mode, c, a = ctx.args
        _no_grid_grad("edge_stats", tgrid is not None)
        out = tx * _product_dx(x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a) if tx is not None else None
        if tVb is not None or tVc is not None:
            tb, tc = _z(tVb, Vb), _z(tVc, Vc)
            out = _add(out, EdgeProduct.apply(x, grid, k, base, Wb, Wc, tb, tc, mode, c, a))
        if mode == 1 and (tWb is not None or tWc is not None):
            tb, tc = _z(tWb, Wb), _z(tWc, Wc)
            out = _add(out, EdgeProduct.apply(x, grid, k, base, Vb, Vc, tb, tc, 1, a, c))
        return out

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_rows(lambda *a: EdgeProduct.apply(*a), info, in_dims, args, (0,), 1)


def _product_dx(x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a):
    """d/dx of E_c,a(x; W, V): E_c,a+1 (+ E_c+1,a in mode 1)."""
    out = EdgeProduct.apply(x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a + 1)
    if mode == 1:
        out = out + EdgeProduct.apply(x, grid, k, base, Wb, Wc, Vb, Vc, 1, c + 1, a)
    return out


class EdgeProductWgrad(torch.autograd.Function):
    """S_c,a(x, u; W) = (sum_n u w b^(a), sum_n u w B_g^(a)), (in, out) and (in, G+k, out)."""

    @staticmethod
    def forward(x, u, grid, k, base, Wb, Wc, mode, c, a):
        return _below(_ops.edge_product_wgrad, x, u, grid, k, base, Wb, Wc, mode, c, a)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, u, grid, k, base, Wb, Wc, mode, c, a = inputs
        _save(ctx, x, u, grid, Wb, Wc)
        ctx.args = (k, base, mode, c, a)

    @staticmethod
    def backward(ctx, GB, GC):
        x, u, grid, Wb, Wc = ctx.saved_tensors
        k, base, mode, c, a = ctx.args
        GB, GC = _z(GB, Wb), _z(GC, Wc)
        need = ctx.needs_input_grad
        _no_grid_grad("edge_stats", need[2])
        gx = _mul(u, _product_dx(x, grid, k, base, Wb, Wc, GB, GC, mode, c, a)) if need[0] else None
        gu = EdgeProduct.apply(x, grid, k, base, Wb, Wc, GB, GC, mode, c, a) if need[1] else None
        gWb = gWc = None
        if mode == 1 and (need[5] or need[6]):
            gWb, gWc = EdgeProductWgrad.apply(x, u, grid, k, base, GB, GC, 1, a, c)
        return gx, gu, None, None, None, gWb, gWc, None, None, None

    @staticmethod
    def jvp(ctx, tx, tu, tgrid, _k, _base, tWb, tWc, _mode, _c, _a):
        x, u, grid, Wb, Wc = ctx.saved_tensors
        k, base, mode, c, a = ctx.args
        _no_grid_grad("edge_stats", tgrid is not None)
        terms = []
        if tx is not None:
            ux = _mul(u, tx)
            terms.append(EdgeProductWgrad.apply(x, ux, grid, k, base, Wb, Wc, mode, c, a + 1))
            if mode == 1:
                terms.append(EdgeProductWgrad.apply(x, ux, grid, k, base, Wb, Wc, 1, c + 1, a))
        if tu is not None:
            terms.append(EdgeProductWgrad.apply(x, tu, grid, k, base, Wb, Wc, mode, c, a))
        if mode == 1 and (tWb is not None or tWc is not None):
            terms.append(EdgeProductWgrad.apply(x, u, grid, k, base, _z(tWb, Wb), _z(tWc, Wc), 1, c, a))
        tb, tc = torch.zeros_like(Wb), torch.zeros_like(Wc)
        for b, c_ in terms:
            tb, tc = tb + b, tc + c_
        return tb, tc

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_loop(lambda *a: EdgeProductWgrad.apply(*a), info, in_dims, args, 2)


def _contract(Sb: Tensor, SB: Tensor, Wb: Tensor, Wc: Tensor) -> Tensor:
    """(in, out): Sb Wb + sum_g SB Wc, with per-channel sums (Sb (in,), SB
    (in, G+k)) broadcast over out, or per-edge sums ((in, out), (in, G+k, out))."""
    if Sb.dim() == 1:
        return Sb.unsqueeze(1) * Wb + torch.einsum("ig,igj->ij", SB, Wc)
    return Sb * Wb + (SB * Wc).sum(1)


def edge_stats_grads(g_sum, g_sq, g_abs, x, grid, k, base, Wb, Wc, need_x=True, need_w=True):
    """edge_stats' backward (grad_x, grad_Wb, grad_Wc) composed from
    differentiable ops, so that it can itself be differentiated to any order:
    with dphi = g_sum + 2 phi g_sq + sign(phi) g_abs,

        grad_x = sum_j dphi phi' = A'(x) + 2 E_0,1(x; W, g_sq W) + E_sign,1(x; W, g_abs W)
        grad_W = sum_n dphi B~ = g_sum S + 2 g_sq S_0,0(x; W) + g_abs S_sign,0(x; W)

    (A the per-channel activation with coefficients sum_j g_sum W, S its
    basis sums). Zeros where not asked for, as the fused op. NaN x add nothing."""
    gx = torch.zeros_like(x)
    gWb, gWc = torch.zeros_like(Wb), torch.zeros_like(Wc)
    if need_x:
        nan = torch.isnan(x)
        xc = torch.where(nan, torch.zeros_like(x), x)
        qb, qc = (g_sum * Wb).sum(1), (g_sum.unsqueeze(1) * Wc).sum(2)
        lin = ActEval.apply(xc, grid, k, base, qc, qb, torch.ones_like(qb), 1)
        gx = torch.where(nan, torch.zeros_like(lin), lin)
        gx = gx + 2 * EdgeProduct.apply(x, grid, k, base, Wb, Wc, g_sq * Wb, g_sq.unsqueeze(1) * Wc, 1, 0, 1)
        gx = gx + EdgeProduct.apply(x, grid, k, base, Wb, Wc, g_abs * Wb, g_abs.unsqueeze(1) * Wc, 0, 0, 1)
    if need_w:
        SB, Sb = ActWgrad.apply(torch.ones_like(x), x, grid, k, base, 0)
        Pb, PB = EdgeProductWgrad.apply(x, None, grid, k, base, Wb, Wc, 1, 0, 0)
        Ab, AB = EdgeProductWgrad.apply(x, None, grid, k, base, Wb, Wc, 0, 0, 0)
        gWb = g_sum * Sb.unsqueeze(1) + 2 * g_sq * Pb + g_abs * Ab
        gWc = g_sum.unsqueeze(1) * SB.unsqueeze(2) + 2 * g_sq.unsqueeze(1) * PB + g_abs.unsqueeze(1) * AB
    return gx, gWb, gWc


class EdgeStats(torch.autograd.Function):
    """edge_stats: its fused backward for a first derivative; when the
    backward is itself recorded (create_graph, torch.func) and in forward
    mode, the composed rules above, which have derivatives of every order."""

    @staticmethod
    def forward(x, grid, k, base, Wb, Wc):
        return _below(_ops.edge_stats, x, grid, k, base, Wb, Wc)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, grid, k, base, Wb, Wc = inputs
        _save(ctx, x, grid, Wb, Wc)
        ctx.args = (k, base)

    @staticmethod
    def backward(ctx, g_sum, g_sq, g_abs):
        x, grid, Wb, Wc = ctx.saved_tensors
        k, base = ctx.args
        need = ctx.needs_input_grad
        _no_grid_grad("edge_stats", need[1])
        need_x, need_w = need[0], need[4] or need[5]
        like = x.new_empty(x.shape[1], Wb.shape[1])
        g_sum, g_sq, g_abs = _z(g_sum, like), _z(g_sq, like), _z(g_abs, like)
        if torch.is_grad_enabled():
            gx, gWb, gWc = edge_stats_grads(g_sum, g_sq, g_abs, x, grid, k, base, Wb, Wc, need_x, need_w)
        else:
            gx, gWb, gWc = _below(_ops.edge_stats_backward, g_sum, g_sq, g_abs, x, grid, k, base, Wb, Wc, need_x,
                                  need_w)
        return (gx if need_x else None, None, None, None, gWb if need[4] else None, gWc if need[5] else None)

    @staticmethod
    def jvp(ctx, tx, tgrid, _k, _base, tWb, tWc):
        x, grid, Wb, Wc = ctx.saved_tensors
        k, base = ctx.args
        _no_grid_grad("edge_stats", tgrid is not None)
        ds = dsq = dabs = torch.zeros(x.shape[1], Wb.shape[1], dtype=x.dtype, device=x.device)
        if tx is not None:
            SB, Sb = ActWgrad.apply(tx, x, grid, k, base, 1)
            ds = ds + _contract(Sb, SB, Wb, Wc)
            dsq = dsq + 2 * _contract(*EdgeProductWgrad.apply(x, tx, grid, k, base, Wb, Wc, 1, 0, 1), Wb, Wc)
            dabs = dabs + _contract(*EdgeProductWgrad.apply(x, tx, grid, k, base, Wb, Wc, 0, 0, 1), Wb, Wc)
        if tWb is not None or tWc is not None:
            tb, tc = _z(tWb, Wb), _z(tWc, Wc)
            SB, Sb = ActWgrad.apply(torch.ones_like(x), x, grid, k, base, 0)
            ds = ds + _contract(Sb, SB, tb, tc)
            dsq = dsq + 2 * _contract(*EdgeProductWgrad.apply(x, None, grid, k, base, Wb, Wc, 1, 0, 0), tb, tc)
            dabs = dabs + _contract(*EdgeProductWgrad.apply(x, None, grid, k, base, Wb, Wc, 0, 0, 0), tb, tc)
        return ds, dsq, dabs

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_loop(lambda *a: EdgeStats.apply(*a), info, in_dims, args, 3)


# ------------------------------------------- the raw ops' Autograd kernels
def _autograd_kernel(name, fn, op):
    """The raw op's Autograd kernel: fn (the Function above) when a gradient
    can be asked for, else the kernel directly, so that calls without autograd
    pay no Python Function (inside a forward-AD dual level always fn, whose
    jvp carries the tangents). Under a torch.func transform a Function cannot
    start from inside the dispatcher: the kanext.ops wrappers call the
    Functions directly there, and a raw op call raises."""
    below, raw = torch._C._AutoDispatchBelowAutograd, op._op  # op._op: the C++ callable, no OpOverload frame
    fwad = _fwad

    def kernel(*args):
        # The common case first, at the least Python cost: a backward pass (grad mode off, which is how
        # csrc's fold_spline_weights autograd calls fold_spline_weights_backward on every training step).
        if not torch.is_grad_enabled() and fwad._current_level < 0 and \
                not torch._C._are_functorch_transforms_active():
            with below():
                return raw(*args)
        if torch._C._are_functorch_transforms_active():
            raise RuntimeError(
                f"kanext.{name}: torch.func transforms (grad, vjp, jvp, jacrev, jacfwd, hessian, vmap) cannot go "
                f"through the raw op torch.ops.kanext.{name}; call kanext.ops.{name} (or the kanext modules), "
                "which use the transform-aware autograd of kanext.autodiff")
        if (torch.is_grad_enabled() and torch._C._any_requires_grad(*args)) or _dual_level_active():
            return fn(*args)
        return _below(op, *args)
    return kernel


def _fold_backward_differentiable(g, coef, scale):
    """fold_spline_weights_backward when its result is differentiated: the
    same values from PyTorch ops (the fold is bilinear), any order."""
    gt = g.transpose(1, 2)
    return gt * scale.unsqueeze(-1), (gt * coef).sum(-1)


def _fused_backward_differentiable(gy, x, grid, k, base, Wb, coef, scale, need_x, need_w, backend=0):
    """kan_linear_fused_backward when its result is differentiated: the
    composition it fuses (the fold in PyTorch ops, kan_linear_backward's
    Function, the fold's backward in PyTorch ops), so every order is exact."""
    gx, gWb, gWc = KanBackward.apply(gy, x, grid, k, base, Wb, fold_dense(coef, scale), need_x, need_w, backend)
    gc, gs = _fold_backward_differentiable(gWc, coef, scale)
    return gx, gWb, gc.contiguous(), gs


_lib = torch.library.Library("kanext", "IMPL")
for _name, _fn in {
    "spline_basis": lambda x, grid, k: BasisDeriv.apply(x, grid, k, 0),
    "spline_basis_deriv": lambda x, grid, k, order=1: BasisDeriv.apply(x, grid, k, order),
    "kan_linear_backward": lambda gy, x, grid, k, base, Wb, Wc, nx, nw, backend=0: KanBackward.apply(
        gy, x, grid, k, base, Wb, Wc, nx, nw, backend),
    "kan_linear_eval": lambda x, v, grid, k, base, Wb, Wc, order: KanEval.apply(x, v, grid, k, base, Wb, Wc, order,
                                                                                0),
    "kan_linear_transpose": lambda *a: KanTranspose.apply(*a),
    "kan_linear_wgrad": lambda *a: KanWgrad.apply(*a),
    "spline_activation": lambda z, grid, k, base, coef, sb, sp: ActEval.apply(z, grid, k, base, coef, sb, sp, 0),
    "spline_activation_backward": lambda *a: ActBackward.apply(*a),
    "spline_activation_eval": lambda *a: ActEval.apply(*a),
    "spline_activation_wgrad": lambda *a: ActWgrad.apply(*a),
    "edge_stats": lambda *a: EdgeStats.apply(*a),
    "edge_stats_backward": edge_stats_grads,
    "edge_product": lambda *a: EdgeProduct.apply(*a),
    "edge_product_wgrad": lambda *a: EdgeProductWgrad.apply(*a),
    "fold_spline_weights_backward": _fold_backward_differentiable,
    "kan_linear_fused_backward": _fused_backward_differentiable,
}.items():
    _lib.impl(_name, _autograd_kernel(_name, _fn, getattr(_ops, _name).default), "Autograd")
