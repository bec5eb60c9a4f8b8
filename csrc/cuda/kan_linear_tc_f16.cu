// __half instantiation of the tensor-core path (see kan_linear_tc_inst.cuh).
#include "kan_linear_tc_inst.cuh"

KANEXT_TC_INSTANTIATE(f16, __half)
