"""scripts/ptxas_report.py (ptxas resource usage and sm_90 occupancy, the spill
check of scripts/check_cuda_compile.sh) and the SASS parser of
scripts/sass_counts.py, on captured compiler output: no nvcc, no GPU.

The ptxas lines below are real `nvcc -arch=sm_90 -O3 -Xptxas -v` output of
this repository's kernels (nvcc 13.0.88); the SASS lines are real
`cuobjdump -sass` output of tc_forward_kernel<float, 3>.
"""
from __future__ import annotations

import importlib.util
import os
import struct
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    path = os.path.join(ROOT, "scripts", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


pr = _load("ptxas_report")
sc = _load("sass_counts")

# ------------------------------------------------------------ ptxas -v parser
PTXAS_SAMPLE = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_ZN6kanext4cuda2tc16tc_grad_w_kernelIfLi3EEEvPKT_S5_PKflllilliPS3_S8_Pf' for 'sm_90'
ptxas info    : Function properties for _ZN6kanext4cuda2tc16tc_grad_w_kernelIfLi3EEEvPKT_S5_PKflllilliPS3_S8_Pf
    16 bytes stack frame, 12 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 16 bytes cumulative stack size
ptxas info    : Compile time = 473.887 ms
ptxas info    : Compiling entry function '_ZN6kanext4cuda3fwd25kan_linear_forward_kernelIfLi3ELb1EEEvPKT_S5_llliS5_S5_lPS3_' for 'sm_90'
ptxas info    : Function properties for _ZN6kanext4cuda3fwd25kan_linear_forward_kernelIfLi3ELb1EEEvPKT_S5_llliS5_S5_lPS3_
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 61 registers, used 1 barriers, 12288 bytes smem
ptxas info    : Compiling entry function '_ZN6kanext4cuda3bwd13grad_w_kernelIfLi3EEEvPKT_S5_S5_llliliilllllPS3_S6_ll' for 'sm_90'
ptxas info    : Function properties for _ZN6kanext4cuda3bwd13grad_w_kernelIfLi3EEEvPKT_S5_S5_llliliilllllPS3_S6_ll
    16 bytes stack frame, 16 bytes spill stores, 16 bytes spill loads
ptxas info    : Used 64 registers, used 1 barriers, 16 bytes cumulative stack size, 6144 bytes smem
ptxas info    : Compiling entry function '_ZN6kanext4cuda3act18elementwise_kernelIfLi3ELb0EEEvPKT_S5_S5_llliS5_S5_S5_PS3_' for 'sm_90'
ptxas info    : Function properties for _ZN6kanext4cuda3act18elementwise_kernelIfLi3ELb0EEEvPKT_S5_S5_llliS5_S5_S5_PS3_
    8 bytes stack frame, 16 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 40 registers, used 0 barriers, 8 bytes cumulative stack size
ptxas info    : Compile time = 119.318 ms
"""

TC_GRAD_W = "_ZN6kanext4cuda2tc16tc_grad_w_kernelIfLi3EEEvPKT_S5_PKflllilliPS3_S8_Pf"
FWD = "_ZN6kanext4cuda3fwd25kan_linear_forward_kernelIfLi3ELb1EEEvPKT_S5_llliS5_S5_lPS3_"
BWD_W = "_ZN6kanext4cuda3bwd13grad_w_kernelIfLi3EEEvPKT_S5_S5_llliliilllllPS3_S6_ll"
ACT = "_ZN6kanext4cuda3act18elementwise_kernelIfLi3ELb0EEEvPKT_S5_S5_llliS5_S5_S5_PS3_"


def test_parser_reads_every_field():
    ks = {k.mangled: k for k in pr.parse_ptxas(PTXAS_SAMPLE, source="x.cu")}
    assert list(ks) == [TC_GRAD_W, FWD, BWD_W, ACT]  # in order, once each
    w = ks[TC_GRAD_W]  # the spilling one, at the 255-register cap
    assert (w.registers, w.barriers, w.stack_frame, w.spill_stores, w.spill_loads, w.cumulative_stack, w.smem) == \
        (255, 1, 16, 12, 12, 16, 0)
    f = ks[FWD]
    assert (f.registers, f.spill_stores, f.spill_loads, f.stack_frame, f.smem) == (61, 0, 0, 0, 12288)
    b = ks[BWD_W]  # cumulative stack and smem on one line
    assert (b.registers, b.cumulative_stack, b.smem, b.spill_stores) == (64, 16, 6144, 16)
    a = ks[ACT]  # stores and loads differ
    assert (a.spill_stores, a.spill_loads, a.barriers) == (16, 8, 0)
    assert all(k.entry and k.source == "x.cu" and k.cmem == {} for k in ks.values())


def test_parser_older_ptxas_constant_banks_and_device_functions():
    # ptxas before 13 printed the constant banks on the "Used" line, and a
    # non-inlined device function gets "Function properties" without
    # "Compiling entry function" (the shape of both is what ptxas 12 prints).
    text = """\
ptxas info    : Function properties for _Z6helperv
    8 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_90'
ptxas info    : Function properties for _Z3fooPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, 360 bytes cmem[0], 8 bytes cmem[2]
"""
    ks = {k.mangled: k for k in pr.parse_ptxas(text)}
    assert ks["_Z3fooPf"].entry and ks["_Z3fooPf"].cmem == {0: 360, 2: 8} and ks["_Z3fooPf"].registers == 40
    assert not ks["_Z6helperv"].entry and ks["_Z6helperv"].stack_frame == 8


# ----------------------------------------------------------- sm_90 occupancy
# Limits (H100/H200, compute capability 9.0): 65536 registers per SM in 4
# sub-partitions of 16384, allocated per warp in units of 256; at most 64
# warps, 32 blocks per SM; 228 KB shared memory per SM, 1 KB reserved per
# block, 128-byte allocation units. Worked by hand:
@pytest.mark.parametrize("regs, threads, smem, blocks, occ, limiter", [
    # 32 regs: 32 x 32 = 1024 regs/warp -> 16384 / 1024 = 16 warps per
    # sub-partition, 64 per SM; 4-warp blocks -> 16 blocks (also the 64-warp
    # limit) -> 64 warps = 100%.
    (32, 128, 0, 16, 1.0, "regs"),
    # 64 regs: 2048 regs/warp -> 8 warps per sub-partition, 32 per SM -> 8
    # blocks of 4 warps = 32 warps = 50% (64 regs x 2048 threads would need
    # 131072 registers, twice the register file).
    (64, 128, 0, 8, 0.5, "regs"),
    # 128 regs: 4096 regs/warp -> 4 per sub-partition, 16 per SM -> 2 blocks of
    # 8 warps = 16 warps = 25%.
    (128, 256, 0, 2, 0.25, "regs"),
    # 255 regs: 255 x 32 = 8160 -> 8192 regs/warp -> 2 per sub-partition, 8
    # per SM -> 1 block of 8 warps = 12.5% (the tensor-core kernels today).
    (255, 256, 0, 1, 0.125, "regs"),
    # 180 regs: 5760 -> 5888 (23 x 256) regs/warp -> 16384 / 5888 = 2 per
    # sub-partition -> 8 warps -> 1 block = 12.5%.
    (180, 256, 0, 1, 0.125, "regs"),
    # 72 regs: 2304 regs/warp -> 7 per sub-partition, 28 per SM -> 3 blocks of 8
    # warps (24 warps) = 37.5%: the 4 warps left over do not make a block.
    (72, 256, 0, 3, 0.375, "regs"),
    # shared memory: 76800 dynamic + 512 static + 1024 reserved = 78336 B (612
    # units of 128) -> 233472 / 78336 = 2 blocks = 16 warps = 25% (registers
    # would allow 8 blocks at 32 regs).
    (32, 256, 76800 + 512, 2, 0.25, "smem"),
    # one-warp blocks at 16 regs: registers would allow 64 blocks, warps 64,
    # but at most 32 blocks per SM -> 32 warps = 50%.
    (16, 32, 0, 32, 0.5, "blocks"),
    # 64 regs, 1024 threads: 32 warps per block fit exactly the 32 warps the
    # registers allow -> 1 block = 50%.
    (64, 1024, 0, 1, 0.5, "regs"),
])
def test_occupancy_by_hand(regs, threads, smem, blocks, occ, limiter):
    o = pr.occupancy(regs, threads, smem)
    assert (o["blocks"], o["occupancy"], o["limiter"]) == (blocks, occ, limiter)
    assert o["warps"] == blocks * -(-threads // 32)


def test_occupancy_when_nothing_fits():
    # 128 regs x 1024 threads: 16 warps per SM by registers < 32 warps per block
    assert pr.occupancy(128, 1024, 0)["blocks"] == 0
    assert pr.occupancy(128, 1024, 0)["limiter"] == "regs"
    # more than 227 KB of shared memory per block cannot launch
    assert pr.occupancy(32, 256, 227 * 1024 + 1)["limiter"] == "launch"
    assert pr.occupancy(32, 256, 227 * 1024)["blocks"] == 1
    assert pr.occupancy(32, 2048, 0)["limiter"] == "launch"


# ------------------------------------------------ names, launches, hot paths
DEM_TC_FWD = ("void kanext::cuda::tc::tc_forward_kernel<float, 3>(float const*, float const*, long, long, long, int, "
              "float const*, float const*, long, float*)")
DEM_TC_FWD_BF16 = ("void kanext::cuda::tc::tc_forward_kernel<__nv_bfloat16, 3>(__nv_bfloat16 const*, float const*, "
                   "long, long, long, int, __nv_bfloat16 const*, __nv_bfloat16 const*, long, __nv_bfloat16*)")
DEM_FOLD = ("void kanext::cuda::(anonymous namespace)::fold_kernel<double>(double const*, double const*, long, long, "
            "long, double*)")
DEM_DERIV = ("void kanext::cuda::(anonymous namespace)::spline_activation_eval_kernel<float, 3>(float const*, "
             "float const*, long, long, long, int, long, float const*, float const*, float const*, float*)")
DEM_BWD_W = ("void kanext::cuda::bwd::grad_w_kernel<double, 3>(double const*, double const*, double const*, long, "
             "long, long, int, long, int, int, long, long, long, long, long, double*, double*, long, long)")


def test_names_and_launch_table():
    assert pr.short_name(DEM_TC_FWD) == "kanext::cuda::tc::tc_forward_kernel<float, 3>"
    assert pr.short_name(DEM_FOLD) == "kanext::cuda::(anonymous namespace)::fold_kernel<double>"
    assert pr.template_args(DEM_TC_FWD_BF16) == ["__nv_bfloat16", "3"]
    # forward_smem_bytes<T>(): fp32 4 (128 x 68 + 64 x 132) + 8192 = 76800;
    # 16-bit 2 (128 x 72 + 64 x 136) + 8192 = 44032
    assert pr.launch_config(DEM_TC_FWD) == (256, 76800, True)
    assert pr.launch_config(DEM_TC_FWD_BF16) == (256, 44032, True)
    assert pr.launch_config(DEM_FOLD) == (256, 0, True)
    assert pr.launch_config(DEM_DERIV) == (128, 0, True)
    # basis-row accumulators at G=5, k=3: 8 rows x 256 threads x 8 bytes
    assert pr.launch_config(DEM_BWD_W) == (256, 16384, True)
    assert pr.launch_config("void kanext::cuda::other::mystery_kernel<float>(float*)") == (None, None, False)


def test_hot_paths():
    assert pr.is_hot(DEM_TC_FWD) and pr.is_hot(DEM_FOLD) and pr.is_hot(DEM_BWD_W)
    # deriv.cu's spline_activation_eval_kernel shares a word with the hot
    # spline_activation kernels (namespace act) but is not on the main path
    assert not pr.is_hot(DEM_DERIV)
    # backend tensor_core_v2's step-3 forward and its W fold are hot, step 2 (tests only) is not
    ws = "void kanext::cuda::tc2::tc2_ws_forward_kernel<float, 3, 0>(float const*, float const*, long, long, long, " \
         "int, unsigned char const*, kanext::cuda::tc2::GridInfo const*, long, float*)"
    assert pr.is_hot(ws) and pr.launch_config(ws) == (384, 131104, True)
    # 16-bit storage: 16 KiB tiles, a ring of 4 stages
    ws16 = "void kanext::cuda::tc2::tc2_ws_forward_kernel<__nv_bfloat16, 3, 0>(__nv_bfloat16 const*)"
    assert pr.is_hot(ws16) and pr.launch_config(ws16) == (384, 4 * (32768 + 16), True)  # 4 stages
    assert pr.is_hot("void kanext::cuda::tc2::tc2_fold_w_kernel<float>(float const*, float const*, float const*, "
                     "long, long, int, int, long, unsigned char*, kanext::cuda::tc2::GridInfo*)")
    assert pr.is_hot("void kanext::cuda::tc2::tc2_grad_x_kernel<3>(float const*)")  # tensor_core_v2 grad x
    assert pr.is_hot("void kanext::cuda::tc2::tc2_grad_w_kernel<3>(float const*)")  # and grad W (step 1)
    gw = "void kanext::cuda::tc2::tc2_ws_grad_w_kernel<float, 3, 0>(float const*)"  # grad W step 2: what runs
    assert pr.is_hot(gw) and pr.launch_config(gw) == (384, 2 * (16384 + 65536) + 32, True)
    gw16 = "void kanext::cuda::tc2::tc2_ws_grad_w_kernel<__half, 3, 0>(__half const*)"
    assert pr.is_hot(gw16) and pr.launch_config(gw16) == (384, 4 * (8192 + 32768 + 16), True)
    assert pr.is_hot("void kanext::cuda::tc2::tc2_dy_image_kernel<float>(float const*)")
    gx = "void kanext::cuda::tc2::tc2_ws_grad_x_kernel<float, 3, 0>(float const*)"  # grad x step 2
    assert pr.is_hot(gx) and pr.launch_config(gx) == (384, 2 * 2 * 32768 + 128 * 132 * 4 + 32, True)
    gx16 = "void kanext::cuda::tc2::tc2_ws_grad_x_kernel<__nv_bfloat16, 3, 0>(__nv_bfloat16 const*)"
    assert pr.is_hot(gx16) and pr.launch_config(gx16) == (384, 4 * (2 * 16384 + 16) + 128 * 132 * 4, True)
    assert pr.is_hot("void kanext::cuda::tc2::tc2_gx_images_kernel<float>(float const*)")
    assert not pr.is_hot("void kanext::cuda::tc2::tc2_forward_kernel<3>(float const*)")


def _rows(*specs):
    rows = []
    for demangled, stores, loads in specs:
        k = pr.Kernel(mangled="_Z" + str(len(rows)), registers=64, spill_stores=stores, spill_loads=loads,
                      source="a.cu", demangled=demangled)
        rows.append(dict(kernel=k, hot=pr.is_hot(demangled), threads=256, dyn_smem=0, known=True,
                         occ=pr.occupancy(64, 256)))
    return rows


def test_spill_check(monkeypatch):
    monkeypatch.setattr(pr, "KNOWN_SPILLS", {"kanext::cuda::tc::tc_forward_kernel<float, 3>": (8, 8)})
    # a known spill within its bytes passes; a cold kernel's spill is not checked
    fail, known, stale = pr.spill_problems(_rows((DEM_TC_FWD, 8, 4), (DEM_DERIV, 100, 100)))
    assert fail == [] and len(known) == 1 and stale == []
    # growth fails, naming the kernel, the bytes and the allowance
    fail, _, _ = pr.spill_problems(_rows((DEM_TC_FWD, 12, 8)))
    assert len(fail) == 1 and "tc_forward_kernel<float, 3>" in fail[0] and "12 B spill stores" in fail[0] \
        and "allows 8 / 8 B" in fail[0]
    # a new hot spill fails; --strict fails the known one too
    assert len(pr.spill_problems(_rows((DEM_BWD_W, 4, 4)))[0]) == 1
    assert len(pr.spill_problems(_rows((DEM_TC_FWD, 8, 8)), strict=True)[0]) == 1
    # a known entry whose kernel no longer spills is reported as stale
    assert pr.spill_problems(_rows((DEM_TC_FWD, 0, 0)))[2] == ["kanext::cuda::tc::tc_forward_kernel<float, 3>"]


def test_known_spills_are_hot_kernels():
    for name in pr.KNOWN_SPILLS:
        assert pr.is_hot("void " + name + "()"), name


def test_markdown_report():
    rows = _rows((DEM_TC_FWD, 8, 8), (DEM_DERIV, 0, 0))
    text = pr.render_markdown(rows, "nvcc release 13.0, V13.0.88", "2026-12-03 10:00 UTC")
    assert "nvcc release 13.0" in text and "2026-12-03" in text and "Hot kernels that spill: 1" in text
    assert "| `kanext::cuda::tc::tc_forward_kernel<float, 3>` | yes | 64 | **8/8** |" in text


def test_cubin_sections(tmp_path):
    # a minimal ELF64: null section, .shstrtab, a kernel's constant bank 0 and code
    names = b"\0.shstrtab\0.nv.constant0._Z3fooPf\0.text._Z3fooPf\0"
    body_off = 64
    shoff = body_off + len(names)
    hdr = bytearray(64)
    hdr[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", hdr, 0x28, shoff)
    struct.pack_into("<HHH", hdr, 0x3A, 64, 4, 1)
    sec = lambda name, off, size: struct.pack("<IIQQQQIIQQ", name, 1, 0, 0, off, size, 0, 0, 1, 0)  # noqa: E731
    data = bytes(hdr) + names + sec(0, 0, 0) + sec(1, body_off, len(names)) \
        + sec(names.index(b".nv.c"), 0, 392) + sec(names.index(b".text"), 0, 1600)
    path = tmp_path / "k.cubin"
    path.write_bytes(data)
    secs = pr.cubin_sections(str(path))
    assert secs[".nv.constant0._Z3fooPf"] == 392
    k = pr.Kernel(mangled="_Z3fooPf")
    pr.apply_cubin([k], str(path))
    assert k.cmem == {0: 392} and k.sass_instructions == 100


# ------------------------------------------------------- sass_counts parser
SASS_SAMPLE = """\
\t\tFunction : _ZN6kanext4cuda2tc17tc_forward_kernelIfLi3EEEvPKT_PKfllliS5_S5_lPS3_
\t.headerflags\t@"EF_CUDA_64BIT_ADDRESS EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*53b0*/                   PLOP3.LUT P0, PT, PT, PT, PT, 0x8, 0x0 ;               /* 0x000000000000781c */
                                                                                          /* 0x000fe40003f0f070 */
        /*53c0*/                   IADD3 R21, R36, UR5, RZ ;                              /* 0x0000000524157c10 */
                                                                                          /* 0x000fe2000fffe0ff */
        /*53d0*/                   VIADD R19, R19, 0xfffffff0 ;                           /* 0xfffffff013137836 */
                                                                                          /* 0x000fe20000000000 */
        /*53e0*/                   STS [R21], RZ ;                                        /* 0x000000ff15007388 */
                                                                                          /* 0x0001e80000000800 */
        /*53f0*/                   STS [R21+0x4], RZ ;                                    /* 0x000004ff15007388 */
                                                                                          /* 0x0001e80000000800 */
        /*5400*/               @P1 BRA 0x53c0 ;                                           /* 0xfffffffc00a81947 */
                                                                                          /* 0x000fea000383ffff */
        /*5410*/                   HMMA.1684.F32.TF32 R92, R64, R157.reuse, R92 ;         /* 0x0000009d405c723c */
                                                                                          /* 0x084fe8000008505c */
        /*5420*/                   LD.E R4, desc[UR16][R2.64] ;                           /* 0x0000001002047980 */
                                                                                          /* 0x000ea8000c101900 */
        /*5430*/                   LDG.E.CONSTANT R40, desc[UR16][R24.64] ;               /* 0x0000001018287981 */
                                                                                          /* 0x000ea8000c1e9900 */
        /*5440*/                   FFMA R42, -R45, R21, 1 ;                               /* 0x3f8000002d2a7423 */
                                                                                          /* 0x000fe20000000115 */
        /*5450*/              @!P0 BRA 0x53b0 ;                                           /* 0x0000000000348947 */
                                                                                          /* 0x000fea0003800000 */
        /*5460*/                   EXIT ;                                                 /* 0x000000000000794d */
                                                                                          /* 0x000fea0003800000 */
"""


def test_sass_classes_and_loops():
    (fn,) = sc.parse_sass(SASS_SAMPLE)
    assert fn.name.startswith("_ZN6kanext4cuda2tc17tc_forward") and len(fn.instrs) == 12
    c = fn.count()
    assert (c["mma"], c["sts"], c["ld"], c["ldg"], c["ffma"], c["bra"], c["int"], c["ctl"], c["total"]) == \
        (1, 2, 1, 1, 1, 2, 3, 1, 12)
    loops = fn.loops()
    assert [(lp.start, lp.end, lp.depth) for lp in loops] == [(0x53b0, 0x5450, 0), (0x53c0, 0x5400, 1)]
    outer, inner = loops
    assert outer.children == [inner]
    own = fn.count(outer.start, outer.end, exclude=[(inner.start, inner.end)])
    assert (own["total"], own["mma"], own["sts"]) == (6, 1, 0)
    assert sc.segments(outer) == [(0x53b0, 0x53b0), (0x5410, 0x5450)]
    assert [sc.classify(op) for op in ("LDSM.16.M88.4", "HGMMA.64x128x16.F32.BF16", "STL.64", "UIADD3", "IMAD.WIDE")] \
        == ["lds", "mma", "stl", "uni", "int"]


# ------------------------------------------------------------ --from-log: a ninja build log
def test_kernels_from_a_build_log_keep_each_file_apart():
    lines = PTXAS_SAMPLE.splitlines()
    first, second = "\n".join(lines[:6]), "\n".join(lines[6:])
    log = "\n".join([
        "[1/4] c++ -MMD -c /repo/csrc/cpu/fold_cpu.cpp -o fold_cpu.o",
        "ptxas info    : not an nvcc step, ignored",
        f"[2/4] /usr/local/cuda/bin/nvcc --generate-dependencies-with-compile -c /repo/csrc/cuda/kan_linear_tc.cu "
        f"-o kan_linear_tc.o -Xptxas -v", first,
        "[3/4] /usr/local/cuda/bin/nvcc -c /repo/csrc/cuda/kan_linear_forward_f32.cu -o f.o -Xptxas -v", second,
        "[4/4] c++ -shared a.o b.o -o _C.so",
    ])
    kernels, sources = pr.kernels_from_log(log)
    assert sources == ["/repo/csrc/cuda/kan_linear_tc.cu", "/repo/csrc/cuda/kan_linear_forward_f32.cu"]
    by_name = {k.mangled: k for k in kernels}
    assert set(by_name) == {TC_GRAD_W, FWD, BWD_W, ACT}
    assert by_name[TC_GRAD_W].source == "kan_linear_tc.cu" and by_name[FWD].source == "kan_linear_forward_f32.cu"
    assert (by_name[TC_GRAD_W].registers, by_name[TC_GRAD_W].spill_stores) == (255, 12)
    assert (by_name[BWD_W].registers, by_name[BWD_W].spill_loads) == (64, 16)


def test_report_flags_are_the_builds():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import nvcc_flags
    finally:
        sys.path.pop(0)
    assert pr.NVCC_FLAGS == [*nvcc_flags.KANEXT_NVCC_FLAGS, *nvcc_flags.TORCH_NVCC_FLAGS, "-Icsrc/include"]
    assert sc.NVCC_FLAGS == pr.NVCC_FLAGS
    # -arch per file: sm_90, and sm_90a for the wgmma kernel (its body is a trap on sm_90)
    assert nvcc_flags.arch_of("csrc/cuda/fold.cu") == "sm_90"
    assert nvcc_flags.arch_of("/x/csrc/cuda/kan_linear_tc_v2.cu") == "sm_90a"
    assert nvcc_flags.arch_of("csrc/cuda/kan_linear_tc_v2_f16.cu") == "sm_90a"  # the 16-bit wgmma kernels
    from torch.utils import cpp_extension  # what torch adds to every nvcc call of the build

    assert nvcc_flags.TORCH_NVCC_FLAGS == cpp_extension.COMMON_NVCC_FLAGS
    assert nvcc_flags.extra_from_env({"KANEXT_NVCC_EXTRA": " -Xptxas  -v "}) == ["-Xptxas", "-v"]
    assert nvcc_flags.extra_from_env({}) == []
