"""The build's CUDA toolkit search (tools/cuda_toolkit.py, used by setup.py and
CMakeLists.txt), on fake toolkits: environment variables, nvcc wrapper scripts
and links, standard folders, and the messages when nothing is found."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from cuda_toolkit import find_cuda_toolkit, real_nvcc  # noqa: E402


def _toolkit(path):
    os.makedirs(os.path.join(path, "bin"))
    os.makedirs(os.path.join(path, "include"))
    nvcc = os.path.join(path, "bin", "nvcc")
    with open(nvcc, "wb") as f:
        f.write(b"\x7fELF fake compiler")
    os.chmod(nvcc, os.stat(nvcc).st_mode | stat.S_IEXEC)
    open(os.path.join(path, "include", "cuda_runtime.h"), "w").close()
    return str(path)


def _script(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return str(path)


def test_wrapper_script_outside_the_toolkit(tmp_path):
    """The machines' case: /usr/local/bin/nvcc is `exec .../cuda-13.0/bin/nvcc "$@"`."""
    home = _toolkit(tmp_path / "cuda-13.0")
    wrapper = _script(tmp_path / "bin" / "nvcc", f'#!/bin/sh\nexec {home}/bin/nvcc "$@"\n')
    found, how = find_cuda_toolkit(env={}, which=lambda _: wrapper, roots=())
    assert found == home and "nvcc on PATH" in how and wrapper in how


def test_links_and_nested_wrappers(tmp_path):
    home = _toolkit(tmp_path / "toolkit")
    inner = _script(tmp_path / "w1" / "bin" / "nvcc", f'#!/bin/bash\n"{home}/bin/nvcc" "$@"\n')
    outer = _script(tmp_path / "w2" / "bin" / "nvcc", f"#!/bin/sh\nexec {inner} $@\n")
    link = tmp_path / "link" / "nvcc"
    os.makedirs(link.parent)
    os.symlink(outer, link)
    assert real_nvcc(str(link)) == os.path.realpath(os.path.join(home, "bin", "nvcc"))
    found, _ = find_cuda_toolkit(env={}, which=lambda _: str(link), roots=())
    assert found == home


def test_environment_variables_first_and_checked(tmp_path):
    home = _toolkit(tmp_path / "a")
    other = _toolkit(tmp_path / "b")
    wrapper = _script(tmp_path / "bin" / "nvcc", f"#!/bin/sh\nexec {other}/bin/nvcc\n")
    assert find_cuda_toolkit(env={"CUDA_HOME": home}, which=lambda _: wrapper, roots=())[0] == home
    assert find_cuda_toolkit(env={"CUDA_PATH": home}, which=lambda _: wrapper, roots=())[0] == home
    found, why = find_cuda_toolkit(env={"CUDA_HOME": str(tmp_path / "nope")}, which=lambda _: wrapper, roots=())
    assert found is None and "CUDA_HOME=" in why and "not a CUDA toolkit" in why


def test_standard_folders_newest_first(tmp_path):
    _toolkit(tmp_path / "cuda-12.4")
    newest = _toolkit(tmp_path / "cuda-13.0")
    found, how = find_cuda_toolkit(env={}, which=lambda _: None, roots=(str(tmp_path / "cuda-*"),))
    assert found == newest and "standard folder" in how


def test_nothing_found_says_what_was_tried(tmp_path):
    wrapper = _script(tmp_path / "bin" / "nvcc", "#!/bin/sh\necho not a compiler\n")
    found, why = find_cuda_toolkit(env={}, which=lambda _: wrapper, roots=(str(tmp_path / "none*"),))
    assert found is None
    assert "CUDA_HOME and CUDA_PATH unset" in why and wrapper in why and "standard folders" in why


def test_command_line_reports_failure(tmp_path):
    env = dict(os.environ, CUDA_HOME=str(tmp_path / "missing"))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "cuda_toolkit.py")], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 1 and "is not a CUDA toolkit" in r.stderr


@pytest.mark.skipif(not os.path.isfile("/usr/local/bin/nvcc"), reason="no nvcc wrapper on this machine")
def test_this_machine_finds_a_real_toolkit():
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "CUDA_PATH")}
    found, how = find_cuda_toolkit(env=env)
    assert found is not None and os.path.isfile(os.path.join(found, "include", "cuda_runtime.h")), how


# ----------------------------------------------------- dispatcher table (scripts/check_dispatch.py)
def _check_dispatch():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import check_dispatch
    finally:
        sys.path.pop(0)
    return check_dispatch


def test_dispatch_table_of_this_build():
    cd = _check_dispatch()
    rows = cd.table()
    assert {"kan_linear_forward", "kan_linear_backward", "spline_basis", "edge_stats"} <= rows.keys()
    assert cd.problems(rows, cuda=False) == []
    import torch
    if torch.version.cuda is None:  # a CPU build has no CUDA kernel: --cuda must say so, per op
        found = cd.problems(rows, cuda=True)
        assert len(found) == len(rows) and all("has no CUDA kernel" in p for p in found)


def test_dispatch_check_names_each_mismatch():
    cd = _check_dispatch()
    full = dict(CPU=True, CUDA=True, Autograd=True, AutocastCUDA=False, fake=True)
    rows = {"kan_linear_forward": dict(full, AutocastCUDA=True), "a": dict(full, CUDA=False, fake=False),
            "b": dict(full, AutocastCUDA=True)}
    assert cd.problems(rows, cuda=False) == ["kanext::a has no fake kernel",
                                             "kanext::b: AutocastCUDA rule present, expected none "
                                             f"(AUTOCAST_CUDA in {cd.__file__})"]
    assert "kanext::a has no fake, CUDA kernel" in cd.problems(rows, cuda=True)
    missing_rule = cd.problems({"kan_linear_forward": full}, cuda=True)
    assert missing_rule == [f"kanext::kan_linear_forward: AutocastCUDA rule missing, expected one "
                            f"(AUTOCAST_CUDA in {cd.__file__})"]
    assert cd.problems({}, cuda=False)[0].startswith("no kanext:: operator")


# ------------------------------------------------------- shape sweep (bench/sweep.py --dry-run)
SWEEP = os.path.join(ROOT, "bench", "sweep.py")


def _sweep_dry_run(*args):
    return subprocess.run([sys.executable, SWEEP, "--dry-run", *args], capture_output=True, text=True, timeout=600)


def _listed_shapes(stdout):
    return [line.split()[1:5] for line in stdout.splitlines() if line.startswith("#   float")]


def test_sweep_dry_run_lists_the_default_and_restricted_shapes():
    r = _sweep_dry_run()
    assert r.returncode == 0, r.stdout + r.stderr
    listed = _listed_shapes(r.stdout)
    assert len(listed) == 4 * 4 * 3 * 2 and "# dry run: 96 shapes" in r.stdout
    assert ["float64", "G=100", "in=out=1024", "N=65536"] in listed
    assert "kanext agrees with kanext.reference on a tiny problem of every (dtype, G)" in r.stdout
    assert r.stdout.rstrip().endswith("# dry run OK: nothing timed")

    r = _sweep_dry_run("--batch", "1024,64", "--width", "8", "--grid", "20,5", "--dtype", "float64",
                       "--peers", "reference")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _listed_shapes(r.stdout) == [["float64", f"G={G}", "in=out=8", f"N={N}"] for G in (5, 20) for N in (64, 1024)]
    assert "inkan" not in r.stdout and "reference  importable" in r.stdout


@pytest.mark.parametrize("args, message", [
    (("--width", "0"), "argument --width: --width takes positive integers, got 0"),
    (("--batch", "64,x"), "argument --batch: --batch takes positive integers separated by commas, got 'x'"),
    (("--grid", "-5"), "argument --grid: --grid takes positive integers, got -5"),
    (("--dtype", "float16"), "argument --dtype: --dtype: unknown value(s) 'float16'; choose from float32, float64"),
    (("--peers", "inkan,gemm"), "argument --peers: --peers: unknown value(s) 'gemm'"),
    (("--k", "0"), "argument --k: must be > 0, got 0"),
])
def test_sweep_rejects_a_bad_axis_value(args, message):
    r = _sweep_dry_run(*args)
    assert r.returncode == 2 and message in r.stderr, r.stdout + r.stderr
    assert "dry run OK" not in r.stdout


def test_cpu_kernel_microbenchmark_builds_and_runs(tmp_path):
    """bench/cpu_kernels.cpp (the one-thread benchmark of the CPU kernel bodies) compiles against the
    headers as they are and runs one small shape and one whose fused backward streams grad coef (at -O1,
    for the test's time; timings unchecked, its own bit comparisons checked)."""
    import shutil

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.fail("no C++ compiler: the extension itself needs one")
    exe = str(tmp_path / "cpu_kernels")
    subprocess.run([cxx, "-O1", "-std=c++17", "-I", os.path.join(ROOT, "csrc", "include"), "-I",
                    os.path.join(ROOT, "csrc", "cpu"), os.path.join(ROOT, "bench", "cpu_kernels.cpp"), "-o", exe],
                   check=True, capture_output=True, text=True)
    dump = tmp_path / "y.bin"
    r = subprocess.run([exe, "100", "3", "20", "4", "randn", str(dump)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for part in ("forward", "backward", "bases + deriv", "fold", "unfold"):
        assert part in r.stdout
    # 20 outputs fill a strip and a partial one: the strip forward's y equals the row forward's
    assert "forward, strips" in r.stdout and "bit-identical to the row forward" in r.stdout, r.stdout
    # the fused backward's weight gradients (on coef, unfold included) equal the unfold of the unfused ones
    assert "bit-identical to the unfolded weight gradients" in r.stdout, r.stdout
    # y (100 x 20), grad x (100 x 3), grad Wb (3 x 20), grad Wc (3 x (4 + 3) x 20), float32
    assert dump.stat().st_size == (100 * 20 + 100 * 3 + 3 * 20 + 3 * 7 * 20) * 4
    # 16 x 256 x 1024 values of grad coef (16 MiB): the fused backward streams them to memory, same bits
    r = subprocess.run([exe, "40", "16", "256", "1021", "randn"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "bit-identical to the unfolded weight gradients" in r.stdout, r.stdout
    bad = subprocess.run([exe, "1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_cpu_kernels_without_vector_shuffles_give_the_same_bits(tmp_path):
    """Compilers other than GCC have no __builtin_shuffle: the kernels' lane reductions (grad x) and
    register transposes (fold, unfold, strips) then take their element-by-element forms. Built here with
    KANEXT_NO_VECTOR_SHUFFLE, bench/cpu_kernels.cpp writes the same y, grad x, grad Wb and grad Wc bit for
    bit as the default build (70 outputs: whole vectors and a tail), and its strip forward still equals
    the row forward."""
    import shutil

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.fail("no C++ compiler: the extension itself needs one")
    dumps = []
    for flags in ([], ["-DKANEXT_NO_VECTOR_SHUFFLE"]):
        exe = str(tmp_path / f"cpu_kernels{len(flags)}")
        subprocess.run([cxx, "-O1", "-std=c++17", *flags, "-I", os.path.join(ROOT, "csrc", "include"), "-I",
                        os.path.join(ROOT, "csrc", "cpu"), os.path.join(ROOT, "bench", "cpu_kernels.cpp"), "-o", exe],
                       check=True, capture_output=True, text=True)
        dump = tmp_path / f"y{len(flags)}.bin"
        r = subprocess.run([exe, "120", "5", "70", "9", "randn", str(dump)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        assert "bit-identical to the row forward" in r.stdout, r.stdout
        assert "bit-identical to the unfolded weight gradients" in r.stdout, r.stdout
        dumps.append(dump.read_bytes())
    assert len(dumps[0]) == (120 * 70 + 120 * 5 + 5 * 70 + 5 * 12 * 70) * 4
    assert dumps[0] == dumps[1]


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@pytest.mark.parametrize("march", ["native", "x86-64-v3", "x86-64-v3-asan"])
def test_cpu_row_search_vector_matches_portable(tmp_path, march):
    """tests/native/locate_rows.cpp: the vector row search of the CPU kernels (AVX-512: in-register knot
    tables and gathers; AVX2: gathers) gives the portable search's interval, window start, window knots
    and x bit for bit, over float/double, k = 0..5, uniform and non-uniform knots, G up to 300, x on
    knots, outside, NaN and +-inf, and partial blocks. The extension is built with -march=native, so
    that build checks the path it runs here; x86-64-v3 checks the AVX2 search on any machine with AVX2
    (on one with AVX-512 too, native checks the AVX-512 search). A build with neither has nothing to
    compare (the program says so). The -asan build runs the AVX2 search under AddressSanitizer: for
    float and k = 3 it loads each row's window knots as one 8-wide row, which must stay inside the
    padded knots (the program sizes them exactly)."""
    import shutil

    asan = march.endswith("-asan")
    march = march.removesuffix("-asan")
    if march == "x86-64-v3" and not {"avx2", "fma", "bmi2"} <= _cpu_flags():
        pytest.skip("this CPU cannot run an x86-64-v3 (AVX2) program")
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.fail("no C++ compiler: the extension itself needs one")
    exe = str(tmp_path / "locate_rows")
    sanitize = ["-fsanitize=address", "-fno-omit-frame-pointer"] if asan else []
    subprocess.run([cxx, "-O2", "-std=c++17", f"-march={march}", *sanitize, "-I", os.path.join(ROOT, "csrc", "include"),
                    "-I", os.path.join(ROOT, "csrc", "cpu"), os.path.join(ROOT, "tests", "native", "locate_rows.cpp"),
                    "-o", exe], check=True, capture_output=True, text=True)
    r = subprocess.run([exe], capture_output=True, text=True, timeout=300)
    if r.returncode == 77:
        pytest.skip(r.stdout.strip())
    assert r.returncode == 0, r.stdout + r.stderr
    if march == "x86-64-v3":
        assert "AVX2 search" in r.stdout, r.stdout
    assert "13440 blocks checked, 0 mismatches" in r.stdout, r.stdout


@pytest.mark.parametrize("target", ["native", "x86-64-v3", "x86-64", "x86-64-v4", "no-shuffle"])
def test_cpu_fold_and_unfold_match_plain_loops(tmp_path, target):
    """tests/native/fold.cpp: the fold of pykan's coef and scale into the kernels' layout and its
    backward (grad coef, grad scale summed over g in order, or by the AVX-512 rows walk's partial sums),
    as the fused ops run them, equal plain loops bit for bit: float/double, outputs and G+k on and off the vector width, column slices, one
    or several inputs per call, prefetching on and off, grad coef streamed or not, NaN/inf in coef. Built for AVX-512 (x86-64-v4:
    the column-block walk with masked loads, where the CPU has it, the tile walk for the fold from
    nb = 2 L, and the rows walk for the unfold), AVX2 and SSE2 (the tile walk), and without vector shuffles (element by element)."""
    import shutil

    need = {"x86-64-v3": {"avx2", "fma", "bmi2"}, "x86-64-v4": {"avx512f", "avx512dq", "avx512bw", "avx512vl"}}
    if not need.get(target, set()) <= _cpu_flags():
        pytest.skip(f"this CPU cannot run a {target} program")
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.fail("no C++ compiler: the extension itself needs one")
    flags = ["-DKANEXT_NO_VECTOR_SHUFFLE"] if target == "no-shuffle" else [f"-march={target}"]
    exe = str(tmp_path / "fold")
    subprocess.run([cxx, "-O2", "-std=c++17", "-ffp-contract=off", *flags, "-I", os.path.join(ROOT, "csrc", "include"),
                    "-I", os.path.join(ROOT, "csrc", "cpu"), os.path.join(ROOT, "tests", "native", "fold.cpp"), "-o",
                    exe], check=True, capture_output=True, text=True)
    r = subprocess.run([exe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    avx512 = target == "x86-64-v4" or (target == "native" and need["x86-64-v4"] <= _cpu_flags())
    walk = ("column blocks", "column blocks") if target == "no-shuffle" else (
        ("column blocks and tiles", "column blocks and rows") if avx512 else ("tiles", "tiles"))
    assert f"fold by {walk[0]}, unfold by {walk[1]}: 7522944 values checked, 0 mismatches" in r.stdout, r.stdout


def test_tiny_benchmark_floor_and_breakdown_compute_the_model():
    """bench/tiny.py: the --floor call (raw fused ops, no module code) computes the model's loss and
    gradients, and --breakdown times every part it names (values unchecked: timings)."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("kanext_bench_tiny", os.path.join(ROOT, "bench", "tiny.py"))
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    model, x, y = tiny.make_problem([3, 4, 2], 37, torch.float64)
    x = x * 1.3  # some rows outside the grid
    params = [p for p in model.parameters() if p.requires_grad]
    loss = tiny.make_call(model, x, y)()
    grads = [p.grad.clone() for p in params]
    floor_loss = tiny.make_floor_call(model, x, y)()
    torch.testing.assert_close(floor_loss, loss, rtol=1e-13, atol=0)
    for p, g in zip(params, grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-12, atol=1e-15)
    parts = tiny.breakdown(model, x, y, repeat=1, calls=2)
    names = {"call", "forward", "forward+loss", "backward", "ops", "rest"}
    names |= {f"layer {l} op {d}" for l in (0, 1) for d in ("fwd", "bwd")}
    assert set(parts) == names
    assert all(v > 0 for k, v in parts.items() if k != "rest")
    assert parts["ops"] == pytest.approx(sum(v for k, v in parts.items() if k.startswith("layer")))
