// The Python module kanext._C: `import kanext._C` loads this shared object,
// which runs the op registrations (csrc/ops.cpp and the backends). The module
// itself holds one helper for the modules' hot path, all_equal.
//
// all_equal(tensors, values) -> bool: whether every tensor holds only its
// value (tensors[i] == values[i] everywhere), read from memory now. The
// modules skip a multiply by a mask of ones and the affines of a layer at
// scale 1, bias 0 (the defaults) only when it returns True. No cache keyed
// on a tensor (version counter, data pointer) can stand in for reading the
// values: a write through `.data` or a numpy view changes them without a
// version bump. From Python, torch.equal per tensor cost about 1 us each and
// the key-building around it more; this reads the handful of values of a
// small model's masks and affines in well under a microsecond.
//
// The module also holds the controls of the CPU output cache
// (csrc/cpu/output_pool.h): cpu_cache_info() -> (cached bytes, cached
// buffers, limit bytes, hits, misses), empty_cpu_cache(),
// set_cpu_cache_limit(bytes); kanext/memory.py wraps them.
//
// It answers False, without reading, for anything it cannot read cheaply and
// safely: a tensor that requires grad or carries a forward-mode tangent
// (skipping it would drop its gradient or tangent),
// a tensor off the CPU (reading would synchronise the device), a
// non-contiguous or non-float32/float64 tensor, tensor subclasses and
// functorch wrappers (no plain storage). False only means "apply the op",
// which gives the same values.
#include <Python.h>

#include <ATen/ATen.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include "cpu/output_pool.h"

namespace {

template <typename T>
bool holds_only(const at::Tensor& t, double value) {
  const T v = static_cast<T>(value);
  if (static_cast<double>(v) != value) return false;  // not representable: some element differs
  const T* p = t.const_data_ptr<T>();
  const int64_t n = t.numel();
  bool same = true;
  for (int64_t i = 0; i < n; ++i) same &= p[i] == v;  // NaN compares unequal
  return same;
}

bool plain_equal(const at::Tensor& t, double value) {
  if (!t.defined() || t.requires_grad() || !t.device().is_cpu() || t.layout() != at::kStrided) return false;
  // a forward-mode tangent (torch.autograd.forward_ad, whose eager levels
  // are 0 only): skipping the op would drop it
  if (t._fw_grad(/*level=*/0).defined()) return false;
  const c10::TensorImpl* impl = t.unsafeGetTensorImpl();
  if (impl->is_python_dispatch() || !t.has_storage() ||
      t.key_set().has_any(c10::DispatchKeySet({c10::DispatchKey::FuncTorchGradWrapper,
                                               c10::DispatchKey::FuncTorchBatched,
                                               c10::DispatchKey::Functionalize})))
    return false;
  if (!t.is_contiguous()) return false;
  if (t.numel() == 0) return true;
  switch (t.scalar_type()) {
    case at::kFloat: return holds_only<float>(t, value);
    case at::kDouble: return holds_only<double>(t, value);
    default: return false;
  }
}

PyObject* all_equal(PyObject* /*self*/, PyObject* args) {
  HANDLE_TH_ERRORS
  PyObject *tensors = nullptr, *values = nullptr;
  if (!PyArg_ParseTuple(args, "OO", &tensors, &values)) return nullptr;
  PyObject* ts = PySequence_Fast(tensors, "kanext._C.all_equal: tensors must be a sequence of tensors");
  if (ts == nullptr) return nullptr;
  PyObject* vs = PySequence_Fast(values, "kanext._C.all_equal: values must be a sequence of floats");
  if (vs == nullptr) {
    Py_DECREF(ts);
    return nullptr;
  }
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(ts);
  bool result = true;
  bool failed = false;
  if (PySequence_Fast_GET_SIZE(vs) != n) {
    PyErr_Format(PyExc_ValueError, "kanext._C.all_equal: got %zd tensors but %zd values", n,
                 PySequence_Fast_GET_SIZE(vs));
    failed = true;
  }
  for (Py_ssize_t i = 0; !failed && result && i < n; ++i) {
    PyObject* o = PySequence_Fast_GET_ITEM(ts, i);
    if (!THPVariable_Check(o)) {
      PyErr_Format(PyExc_TypeError, "kanext._C.all_equal: tensors[%zd] is a %s, not a tensor", i,
                   Py_TYPE(o)->tp_name);
      failed = true;
      break;
    }
    const double v = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(vs, i));
    if (v == -1.0 && PyErr_Occurred()) {
      failed = true;
      break;
    }
    result = plain_equal(THPVariable_Unpack(o), v);
  }
  Py_DECREF(ts);
  Py_DECREF(vs);
  if (failed) return nullptr;
  return PyBool_FromLong(result);
  END_HANDLE_TH_ERRORS
}

PyObject* cpu_cache_info(PyObject* /*self*/, PyObject* /*args*/) {
  const kanext::cpu::PoolInfo i = kanext::cpu::pool_info();
  return Py_BuildValue("(KKKKK)", (unsigned long long)i.cached_bytes, (unsigned long long)i.cached_buffers,
                       (unsigned long long)i.limit_bytes, (unsigned long long)i.hits,
                       (unsigned long long)i.misses);
}

PyObject* empty_cpu_cache(PyObject* /*self*/, PyObject* /*args*/) {
  kanext::cpu::pool_empty();
  Py_RETURN_NONE;
}

PyObject* set_cpu_cache_limit(PyObject* /*self*/, PyObject* args) {
  unsigned long long bytes = 0;
  if (!PyArg_ParseTuple(args, "K", &bytes)) return nullptr;
  kanext::cpu::pool_set_limit(static_cast<size_t>(bytes));
  Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"cpu_cache_info", cpu_cache_info, METH_NOARGS,
     "cpu_cache_info() -> (cached_bytes, cached_buffers, limit_bytes, hits, misses) of the CPU output cache"},
    {"empty_cpu_cache", empty_cpu_cache, METH_NOARGS, "empty_cpu_cache(): free every cached CPU output buffer"},
    {"set_cpu_cache_limit", set_cpu_cache_limit, METH_VARARGS,
     "set_cpu_cache_limit(bytes): cap the CPU output cache (0 turns it off); empties it"},
    {"all_equal", all_equal, METH_VARARGS,
     "all_equal(tensors, values) -> bool: every tensors[i] equals values[i] everywhere (read now); False, "
     "without reading, for a tensor that requires grad, is off the CPU, non-contiguous, not float32/float64, "
     "a subclass or a functorch wrapper"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
  return PyModule_Create(&module_def);
}
}
