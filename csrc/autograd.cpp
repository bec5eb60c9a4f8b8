// Autograd for the hot kanext ops, in C++ (schemas in csrc/ops.cpp).
//
// kan_linear_forward, fold_spline_weights and kan_linear_fused (the two in
// one, what KANLinear calls on the CPU) run once per layer per step of every
// training loop. Registering their derivatives here (Autograd key)
// keeps Python out of both passes: for the small layers of the KAN workflow
// (a [2, 5, 1] KAN on 1000 points) the Python autograd wrappers cost about as
// much as the kernels. The derivatives are the same ops as before: the
// backward calls kan_linear_backward / fold_spline_weights_backward through
// the dispatcher, so torch.compile and the fake kernels (kanext/ops.py) see
// ordinary op calls. Every other op has its autograd in kanext/autodiff.py.
//
// Higher orders: when the backward itself is differentiated (create_graph,
// grad mode on in the backward), kan_linear_backward is called through its
// autograd (kanext/autodiff.py, derivatives of any order) and the fold's
// backward is written with differentiable ATen ops; otherwise both run below
// autograd, with no Python on the way. torch.func transforms cannot see a C++
// autograd::Function: kanext's Python entry points (kanext.ops, the modules)
// route to kanext/autodiff.py under a transform, and a direct call of these two
// raw ops under one raises a clear error.
//
// Also here: kan_linear_forward's autocast rule on CUDA. Under
// torch.autocast("cuda", dtype=bf16 / fp16), x, Wb and Wc are cast to the
// autocast dtype (as for a matmul; float64 tensors are left alone) and the
// grid to float32 (knots are never rounded to 16 bits); the tensor-core
// kernels then run in that dtype with float32 accumulation. The casts are
// ordinary autograd ops, so gradients reach float32 parameters in float32.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>
#include <torch/library.h>

namespace kanext {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

at::Tensor call_forward(const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t base, const at::Tensor& Wb,
                        const at::Tensor& Wc, int64_t backend) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("kanext::kan_linear_forward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, const at::Tensor&,
                                         const at::Tensor&, int64_t)>();
  return op.call(x, grid, k, base, Wb, Wc, backend);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> call_backward(const at::Tensor& gy, const at::Tensor& x,
                                                             const at::Tensor& grid, int64_t k, int64_t base,
                                                             const at::Tensor& Wb, const at::Tensor& Wc, bool need_x,
                                                             bool need_w, int64_t backend) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("kanext::kan_linear_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                           const at::Tensor&, const at::Tensor&, bool, bool, int64_t)>();
  return op.call(gy, x, grid, k, base, Wb, Wc, need_x, need_w, backend);
}

at::Tensor call_fold(const at::Tensor& coef, const at::Tensor& scale) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("kanext::fold_spline_weights", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(coef, scale);
}

std::tuple<at::Tensor, at::Tensor> call_fold_backward(const at::Tensor& g, const at::Tensor& coef,
                                                      const at::Tensor& scale) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("kanext::fold_spline_weights_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                 const at::Tensor&)>();
  return op.call(g, coef, scale);
}

at::Tensor call_fused(const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t base, const at::Tensor& Wb,
                      const at::Tensor& coef, const at::Tensor& scale, int64_t backend) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("kanext::kan_linear_fused", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, const at::Tensor&,
                                         const at::Tensor&, const at::Tensor&, int64_t)>();
  return op.call(x, grid, k, base, Wb, coef, scale, backend);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> call_fused_backward(
    const at::Tensor& gy, const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t base, const at::Tensor& Wb,
    const at::Tensor& coef, const at::Tensor& scale, bool need_x, bool need_w, int64_t backend) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("kanext::kan_linear_fused_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                           const at::Tensor&, const at::Tensor&, const at::Tensor&, bool, bool, int64_t)>();
  return op.call(gy, x, grid, k, base, Wb, coef, scale, need_x, need_w, backend);
}

void refuse_functorch(const char* op, const char* python_entry) {
  // functorch includes its dynamic-layer keys in the thread's dispatch keys
  // while any transform is active.
  TORCH_CHECK(!c10::impl::tls_is_dispatch_key_included(c10::DispatchKey::FuncTorchDynamicLayerBackMode), op,
              ": the raw op has a C++ autograd, which torch.func transforms (grad, vjp, jvp, jacrev, jacfwd, hessian, "
              "vmap) cannot use; call ", python_entry, " (or the kanext modules), which route to the "
              "transform-aware autograd of kanext/autodiff.py");
}

class KanLinearFn : public torch::autograd::Function<KanLinearFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& grid, int64_t k,
                            int64_t base, const at::Tensor& Wb, const at::Tensor& Wc, int64_t backend) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x, grid, Wb, Wc});
    ctx->saved_data["k"] = k;
    ctx->saved_data["base"] = base;
    ctx->saved_data["backend"] = backend;  // the backward runs with the forward's strategy
    return call_forward(x, grid, k, base, Wb, Wc, backend);
  }

  // One gradient per forward argument (undefined for grid, k, base and backend).
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    TORCH_CHECK(!ctx->needs_input_grad(1), "kanext.kan_linear: gradients with respect to grid are not supported");
    const auto saved = ctx->get_saved_variables();
    // needs_input_grad counts tensor arguments only: x, grid, Wb, Wc.
    const bool need_x = ctx->needs_input_grad(0), need_wb = ctx->needs_input_grad(2),
               need_wc = ctx->needs_input_grad(3);
    // Differentiated again (create_graph): through kan_linear_backward's own
    // autograd; else below autograd (no Python autograd kernel on the way).
    c10::optional<at::AutoDispatchBelowADInplaceOrView> below;
    if (!at::GradMode::is_enabled()) below.emplace();
    // (grad_y as it comes: the ops read strided rows, and y.sum()'s stride-0
    // grad_y as one row, without an (N, out) copy)
    auto [gx, gWb, gWc] = call_backward(grads[0], saved[0], saved[1], ctx->saved_data["k"].toInt(),
                                        ctx->saved_data["base"].toInt(), saved[2], saved[3], need_x,
                                        need_wb || need_wc, ctx->saved_data["backend"].toInt());
    return {need_x ? gx : at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            need_wb ? gWb : at::Tensor(), need_wc ? gWc : at::Tensor(), at::Tensor()};
  }
};

class FoldFn : public torch::autograd::Function<FoldFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& coef, const at::Tensor& scale) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({coef, scale});
    return call_fold(coef, scale);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    if (at::GradMode::is_enabled()) {
      // Differentiated again: Wc[i,g,j] = scale[i,j] coef[i,j,g] written with
      // ATen ops, so that every order is exact (the fold is bilinear).
      // (in, out, G+k) like coef, and contiguous: the parameter gradients
      // these products feed must be dense (torch.optim.LBFGS views them).
      const at::Tensor g = grads[0].transpose(1, 2).contiguous();
      return {ctx->needs_input_grad(0) ? g * saved[1].unsqueeze(-1) : at::Tensor(),
              ctx->needs_input_grad(1) ? (g * saved[0]).sum(-1) : at::Tensor()};
    }
    at::AutoDispatchBelowADInplaceOrView below;  // first order: the kernel itself, not its Python Autograd kernel
    auto [gc, gs] = call_fold_backward(grads[0].contiguous(), saved[0], saved[1]);
    return {ctx->needs_input_grad(0) ? gc : at::Tensor(), ctx->needs_input_grad(1) ? gs : at::Tensor()};
  }
};

// kan_linear_fused = kan_linear_forward on fold_spline_weights(coef, scale).
// First order: one fused backward (no folded Wc is formed). Differentiated
// again: the same composition as the two ops' own autograd (the fold through
// its op, kan_linear_backward through its autograd, the fold's backward with
// ATen ops), so every order is exact.
class KanLinearFusedFn : public torch::autograd::Function<KanLinearFusedFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& grid, int64_t k,
                            int64_t base, const at::Tensor& Wb, const at::Tensor& coef, const at::Tensor& scale,
                            int64_t backend) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x, grid, Wb, coef, scale});
    ctx->saved_data["k"] = k;
    ctx->saved_data["base"] = base;
    ctx->saved_data["backend"] = backend;
    return call_fused(x, grid, k, base, Wb, coef, scale, backend);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    TORCH_CHECK(!ctx->needs_input_grad(1), "kanext.kan_linear: gradients with respect to grid are not supported");
    const auto s = ctx->get_saved_variables();
    // needs_input_grad counts tensor arguments only: x, grid, Wb, coef, scale.
    const bool need_x = ctx->needs_input_grad(0), need_wb = ctx->needs_input_grad(2),
               need_c = ctx->needs_input_grad(3), need_s = ctx->needs_input_grad(4);
    const bool need_w = need_wb || need_c || need_s;
    const int64_t k = ctx->saved_data["k"].toInt(), base = ctx->saved_data["base"].toInt(),
                  backend = ctx->saved_data["backend"].toInt();
    const at::Tensor& gy = grads[0];  // (as it comes: see KanLinearFn::backward)
    at::Tensor gx, gWb, gc, gs;
    if (at::GradMode::is_enabled()) {
      at::Tensor gWc;
      std::tie(gx, gWb, gWc) =
          call_backward(gy, s[0], s[1], k, base, s[2], call_fold(s[3], s[4]), need_x, need_w, backend);
      const at::Tensor g = gWc.transpose(1, 2).contiguous();
      if (need_c) gc = g * s[4].unsqueeze(-1);
      if (need_s) gs = (g * s[3]).sum(-1);
    } else {
      at::AutoDispatchBelowADInplaceOrView below;
      std::tie(gx, gWb, gc, gs) = call_fused_backward(gy, s[0], s[1], k, base, s[2], s[3], s[4], need_x, need_w,
                                                      backend);
    }
    return {need_x ? gx : at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            need_wb ? gWb : at::Tensor(), need_c ? gc : at::Tensor(), need_s ? gs : at::Tensor(), at::Tensor()};
  }
};

at::Tensor kan_linear_fused_autograd(const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t base,
                                     const at::Tensor& Wb, const at::Tensor& coef, const at::Tensor& scale,
                                     int64_t backend) {
  refuse_functorch("kanext.kan_linear_fused", "kanext.ops.kan_linear_fused");
  return KanLinearFusedFn::apply(x, grid, k, base, Wb, coef, scale, backend);
}

at::Tensor kan_linear_forward_autograd(const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t base,
                                       const at::Tensor& Wb, const at::Tensor& Wc, int64_t backend) {
  refuse_functorch("kanext.kan_linear_forward", "kanext.ops.kan_linear");
  return KanLinearFn::apply(x, grid, k, base, Wb, Wc, backend);
}

at::Tensor fold_autograd(const at::Tensor& coef, const at::Tensor& scale) {
  refuse_functorch("kanext.fold_spline_weights", "kanext.ops.fold_spline_weights");
  return FoldFn::apply(coef, scale);
}

at::Tensor kan_linear_forward_autocast_cuda(const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t base,
                                            const at::Tensor& Wb, const at::Tensor& Wc, int64_t backend) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
  const at::ScalarType dt = at::autocast::get_autocast_dtype(at::kCUDA);
  const auto cast = [&](const at::Tensor& t) { return at::autocast::cached_cast(dt, t, c10::DeviceType::CUDA); };
  const at::Tensor xc = cast(x);
  const bool half = xc.scalar_type() == at::kHalf || xc.scalar_type() == at::kBFloat16;
  return call_forward(xc, half ? grid.to(at::kFloat) : grid, k, base, cast(Wb), cast(Wc), backend);
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, Autograd, m) {
  m.impl("kan_linear_forward", &kan_linear_forward_autograd);
  m.impl("fold_spline_weights", &fold_autograd);
  m.impl("kan_linear_fused", &kan_linear_fused_autograd);
}

TORCH_LIBRARY_IMPL(kanext, AutocastCUDA, m) { m.impl("kan_linear_forward", &kan_linear_forward_autocast_cuda); }

}  // namespace kanext
