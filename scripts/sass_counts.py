#!/usr/bin/env python3
"""Static SASS instruction counts of kanext's CUDA kernels on sm_90, per kernel
and per loop, for the roofline model of docs/roofline.md.

Compiles .cu files to sm_90 cubins (nvcc -cubin -arch=sm_90 -std=c++17 -O3
-Icsrc/include, the flags of scripts/check_cuda_compile.sh) or takes the
cubins of a folder (scripts/ptxas_report.py --keep-cubins DIR), disassembles
them with cuobjdump -sass, and counts instructions by class:

  mma    tensor-core matrix instructions (HMMA, HGMMA, IMMA, DMMA, BMMA)
  lds    shared loads (LDS, LDSM)          sts   shared stores (STS)
  ldg    global loads (LDG)                stg   global stores (STG, and RED/ATOMG)
  ld/st  generic loads / stores (LD, ST: the address space is not known at
         compile time, e.g. a pointer into shared memory that the compiler
         could not prove to be shared)
  ldl/stl local loads / stores (spills, local arrays)
  ffma, fmul, fadd   FP32 arithmetic;  fp32x   other FP32 (FSETP, FSEL, FMNMX, FCHK, ...)
  mufu   special-function unit;  conv  conversions (F2F, F2I, I2F, F2FP, I2FP, FRND)
  fp64   DFMA, DMUL, DADD, DSETP, ...;  fp16  HFMA2, HADD2, HMUL2, ...
  int    integer and logic (IMAD*, IADD3, LEA, ISETP, SHF, LOP3, SEL, VIADD, ...)
  uni    uniform-datapath instructions (U*)
  bar    BAR;  bra  branches (BRA, BRX, JMP; BSSY/BSYNC counted in ctl)
  ctl    other control (BSSY, BSYNC, CALL, RET, EXIT, WARPSYNC, NOP, ...)
  other  everything else (MOV, S2R, SHFL, LDC, ...)

Loops are found from backward branches: a branch at address a to a target
t < a closes the loop [t, a]. Loops are nested by address range; `own`
counts exclude the ranges of the loops nested inside. The counts are static
(instructions in the code), not dynamic: a loop body runs as often as its
trip count says, which the model supplies. The address-range view of a loop
is an approximation when the compiler lays a loop body out in pieces.

    python3 scripts/sass_counts.py csrc/cuda/kan_linear_tc_f32.cu --kernel 'tc_forward_kernel<float, 3>'
    python3 scripts/sass_counts.py --cubin-dir /tmp/cubins --kernel 'tc_\\w+_kernel<float, 3>' --markdown

cuobjdump is searched as $CUOBJDUMP, next to the real nvcc, then on PATH.
Standard library only.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from nvcc_flags import KANEXT_NVCC_FLAGS, TORCH_NVCC_FLAGS, arch_of  # noqa: E402

# the build's flags (setup.py), so that what is reported is what ships
NVCC_FLAGS = [*KANEXT_NVCC_FLAGS, *TORCH_NVCC_FLAGS, "-Icsrc/include"]  # after -arch=arch_of(file)

CLASSES = ["mma", "lds", "sts", "ldg", "stg", "ld", "st", "ldl", "stl", "ffma", "fmul", "fadd", "fp32x", "mufu",
           "conv", "fp64", "fp16", "int", "uni", "bar", "bra", "ctl", "other"]

_EXACT = {
    "LDS": "lds", "LDSM": "lds", "STS": "sts", "LDG": "ldg", "STG": "stg", "RED": "stg", "ATOMG": "stg",
    "LD": "ld", "ST": "st", "LDL": "ldl", "STL": "stl", "FFMA": "ffma", "FMUL": "fmul", "FADD": "fadd",
    "MUFU": "mufu", "BAR": "bar", "BRA": "bra", "BRX": "bra", "JMP": "bra", "JMX": "bra",
}
_PREFIX = [
    (("HMMA", "HGMMA", "IMMA", "IGMMA", "DMMA", "BMMA", "QGMMA", "WGMMA"), "mma"),
    (("FSETP", "FSEL", "FMNMX", "FCHK", "FSET", "FSWZADD"), "fp32x"),
    (("F2F", "F2I", "I2F", "F2FP", "I2FP", "FRND"), "conv"),
    (("DFMA", "DMUL", "DADD", "DSETP", "DMNMX", "DSET"), "fp64"),
    (("HFMA2", "HADD2", "HMUL2", "HSETP2", "HMNMX2", "HSET2"), "fp16"),
    (("IMAD", "IADD", "LEA", "ISETP", "SHF", "LOP", "SEL", "VIADD", "VIMNMX", "IMNMX", "IABS", "POPC", "FLO",
      "BREV", "PRMT", "SGXT", "BMSK", "ISCADD", "IMUL", "PLOP3", "P2R", "R2P", "VABSDIFF", "IDP", "IMNMX"), "int"),
    (("BSSY", "BSYNC", "CALL", "RET", "EXIT", "WARPSYNC", "NOP", "BREAK", "YIELD", "BPT", "KILL", "NANOSLEEP",
      "ELECT", "ACQBULK", "ENDCOLLECTIVE"), "ctl"),
]


def classify(opcode: str) -> str:
    """Class of an opcode with its modifiers ('HMMA.1684.F32.TF32' -> 'mma')."""
    base = opcode.split(".", 1)[0]
    if base in _EXACT:
        return _EXACT[base]
    for prefixes, cls in _PREFIX:
        if base.startswith(prefixes):
            return cls
    if base.startswith("U") and base not in ("UNKNOWN",):
        return "uni"
    return "other"


@dataclass
class Instr:
    addr: int
    pred: str
    opcode: str
    operands: str

    @property
    def cls(self) -> str:
        return classify(self.opcode)

    def branch_target(self) -> int | None:
        if self.cls != "bra":
            return None
        m = re.search(r"0x([0-9a-f]+)\s*$", self.operands.strip())
        return int(m.group(1), 16) if m else None


@dataclass
class Loop:
    start: int
    end: int          # address of the backward branch
    depth: int = 0
    children: list = field(default_factory=list)


@dataclass
class Function:
    name: str
    instrs: list
    demangled: str = ""

    def loops(self) -> list[Loop]:
        """Loops from backward branches, merged by target (several branches back to one
        head form one loop: the largest range), nested by range, outermost first."""
        by_head: dict[int, int] = {}
        for ins in self.instrs:
            t = ins.branch_target()
            # t == addr is the `BRA` to itself that ends every function
            # (padding after EXIT), not a loop
            if t is not None and t < ins.addr:
                by_head[t] = max(by_head.get(t, -1), ins.addr)
        loops = sorted((Loop(s, e) for s, e in by_head.items()), key=lambda lp: (lp.start, -lp.end))
        stack: list[Loop] = []
        for lp in loops:
            while stack and not (stack[-1].start <= lp.start and lp.end <= stack[-1].end):
                stack.pop()
            lp.depth = len(stack)
            if stack:
                stack[-1].children.append(lp)
            stack.append(lp)
        return loops

    def count(self, start: int | None = None, end: int | None = None, exclude=()) -> Counter:
        c = Counter()
        for ins in self.instrs:
            if start is not None and not (start <= ins.addr <= end):
                continue
            if any(lo <= ins.addr <= hi for lo, hi in exclude):
                continue
            c[ins.cls] += 1
            c["total"] += 1
        return c


_RE_FUNC = re.compile(r"^\s*Function\s*:\s*(\S+)")
_RE_INS = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")


def parse_sass(text: str) -> list[Function]:
    """Functions of `cuobjdump -sass` output."""
    funcs: list[Function] = []
    cur: Function | None = None
    for line in text.splitlines():
        m = _RE_FUNC.match(line)
        if m:
            cur = Function(m.group(1), [])
            funcs.append(cur)
            continue
        if cur is None:
            continue
        m = _RE_INS.search(line)
        if m:
            cur.instrs.append(Instr(int(m.group(1), 16), (m.group(2) or "").strip(), m.group(3), m.group(4)))
    return funcs


# ------------------------------------------------------------------ tooling
def _real_nvcc_bin(nvcc: str) -> str:
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        from cuda_toolkit import real_nvcc  # noqa: E402
        return os.path.dirname(real_nvcc(nvcc))
    except Exception:  # pragma: no cover
        return os.path.dirname(os.path.realpath(nvcc))
    finally:
        sys.path.pop(0)


def find_nvcc() -> str | None:
    cand = os.environ.get("NVCC") or shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    return cand if os.path.isfile(cand) and os.access(cand, os.X_OK) else None


def find_tool(name: str, env: str, nvcc: str | None) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    if nvcc:
        p = os.path.join(_real_nvcc_bin(nvcc), name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def demangle(names: list[str], nvcc: str | None) -> list[str]:
    tool = find_tool("cu++filt", "CUFILT", nvcc) or shutil.which("c++filt")
    if not tool or not names:
        return list(names)
    r = subprocess.run([tool], input="\n".join(names) + "\n", capture_output=True, text=True)
    out = r.stdout.splitlines()
    return out if r.returncode == 0 and len(out) == len(names) else list(names)


def short_name(demangled: str) -> str:
    s = re.sub(r"^void\s+", "", demangled)
    anon = "(anonymous namespace)"
    depth, i = 0, 0
    while i < len(s):
        if s.startswith(anon, i):
            i += len(anon)
            continue
        if s[i] == "<":
            depth += 1
        elif s[i] == ">":
            depth -= 1
        elif s[i] == "(" and depth == 0:
            break
        i += 1
    return s[:i].strip()


def cubins_for(files: list[str], nvcc: str, workdir: str) -> list[str]:
    """nvcc -cubin of each file, in parallel (MAX_JOBS, default: the CPUs this process may use)."""
    def one(f: str) -> str:
        arch = arch_of(f)
        cubin = os.path.join(workdir, f"{os.path.splitext(os.path.basename(f))[0]}.{arch}.cubin")
        r = subprocess.run([nvcc, "-cubin", "-arch=" + arch, *NVCC_FLAGS, f, "-o", cubin], cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"sass_counts: nvcc failed on {f}:\n{r.stderr}")
        return cubin
    jobs = int(os.environ.get("MAX_JOBS") or 0) or len(os.sched_getaffinity(0))
    with cf.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, files))


# ------------------------------------------------------------------- output
def segments(lp: Loop) -> list[tuple[int, int]]:
    """The address ranges of a loop not covered by its inner loops (its own code, in pieces)."""
    out, cur = [], lp.start
    for c in sorted(lp.children, key=lambda c: c.start):
        if c.start > cur:
            out.append((cur, c.start - 16))
        cur = max(cur, c.end + 16)
    if cur <= lp.end:
        out.append((cur, lp.end))
    return out


def rows_for(fn: Function, loops_mode: str, with_segments: bool = False) -> list[tuple[str, Counter]]:
    rows = [("function", fn.count())]
    if loops_mode == "none":
        return rows
    for lp in fn.loops():
        if loops_mode == "innermost" and lp.children:
            continue
        excl = [(c.start, c.end) for c in lp.children]
        label = f"{'  ' * lp.depth}loop 0x{lp.start:x}-0x{lp.end:x} (depth {lp.depth}"
        label += f", {len(lp.children)} inner)" if lp.children else ")"
        rows.append((label, fn.count(lp.start, lp.end, exclude=excl)))
        if with_segments and lp.children:
            for a, b in segments(lp):
                rows.append((f"{'  ' * (lp.depth + 1)}. own 0x{a:x}-0x{b:x}", fn.count(a, b)))
    return rows


def render(funcs: list[Function], loops_mode: str, markdown: bool, with_segments: bool = False) -> str:
    cols = ["total"] + CLASSES
    out = []
    for fn in funcs:
        rows = rows_for(fn, loops_mode, with_segments)
        used = [c for c in cols if any(r[1][c] for r in rows)]
        if markdown:
            out += [f"`{short_name(fn.demangled or fn.name)}`", "",
                    "| range (own instructions) | " + " | ".join(used) + " |",
                    "|---|" + "--:|" * len(used)]
            for label, c in rows:
                out.append(f"| {label.strip()} | " + " | ".join(str(c[k]) for k in used) + " |")
            out.append("")
        else:
            out.append(short_name(fn.demangled or fn.name))
            width = max(len(r[0]) for r in rows)
            out.append(" " * (width + 2) + " ".join(f"{k:>6}" for k in used))
            for label, c in rows:
                out.append(f"  {label:<{width}}" + " ".join(f"{c[k]:>6}" for k in used))
            out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help=".cu files to compile (default: csrc/cuda/*.cu unless --cubin-dir)")
    ap.add_argument("--cubin-dir", help="use the *.cubin files of this folder instead of compiling")
    ap.add_argument("--kernel", default=None, help="regular expression on the demangled kernel name")
    ap.add_argument("--loops", choices=["all", "innermost", "none"], default="all")
    ap.add_argument("--markdown", action="store_true", help="Markdown tables")
    ap.add_argument("--segments", action="store_true",
                    help="also list the pieces of each outer loop's own code between its inner loops")
    args = ap.parse_args(argv)

    nvcc = find_nvcc()
    cuobjdump = find_tool("cuobjdump", "CUOBJDUMP", nvcc)
    if not cuobjdump:
        print("sass_counts: cuobjdump not found (set CUOBJDUMP)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sass_counts.") as tmp:
        if args.cubin_dir:
            cubins = sorted(glob.glob(os.path.join(args.cubin_dir, "*.cubin")))
        else:
            if nvcc is None:
                print("sass_counts: nvcc not found", file=sys.stderr)
                return 2
            files = args.files or sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")))
            cubins = cubins_for(files, nvcc, tmp)
        funcs: list[Function] = []
        for cubin in cubins:
            r = subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"sass_counts: cuobjdump failed on {cubin}:\n{r.stderr}", file=sys.stderr)
                return 2
            funcs += parse_sass(r.stdout)
    for fn, d in zip(funcs, demangle([f.name for f in funcs], nvcc)):
        fn.demangled = d
    if args.kernel:
        rx = re.compile(args.kernel)
        funcs = [f for f in funcs if rx.search(f.demangled) or rx.search(f.name)]
    funcs.sort(key=lambda f: short_name(f.demangled))
    print(render(funcs, args.loops, args.markdown, args.segments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
