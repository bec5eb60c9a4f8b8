// __nv_bfloat16 instantiation of the tensor-core path (see kan_linear_tc_inst.cuh).
#include "kan_linear_tc_inst.cuh"

KANEXT_TC_INSTANTIATE(bf16, __nv_bfloat16)
