#!/usr/bin/env bash
# One entry point that sets everything up on a fresh machine with Python 3.11:
#   bash run.sh demo          hello KAN: fit, prune, refine, auto_symbolic -> the formula of exp(sin(pi x) + y^2)
#   bash run.sh test [ARGS]   the test suite (pytest ARGS)
#   bash run.sh bench [ARGS]  bench/run.py with the peers installed (ARGS for run.py)
# It creates .venv, installs the pinned CPU torch and the requirements once,
# and (re)builds the C++ extension in place when a source changed.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_PIN=${KANEXT_TORCH:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate

stamp=.venv/.kanext-requirements
want="$TORCH_PIN $(cat requirements/*.txt | md5sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  python -m pip install -q --upgrade pip
  # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
  python -m pip install -q "$TORCH_PIN"
  python -m pip install -q -r requirements/build.txt -r requirements/run.txt -r requirements/test.txt
  echo "$want" >"$stamp"
fi

# Rebuild when any C++/CUDA source or the build script is newer than the built module.
so=$(ls kanext/_C*.so 2>/dev/null | head -n1 || true)
if [ -z "$so" ] || [ -n "$(find csrc setup.py pyproject.toml -newer "$so" -type f 2>/dev/null | head -n1)" ] \
  || ! python -c "import kanext" 2>/dev/null; then
  python -m pip install -q --no-build-isolation -e .
fi

cmd=${1:-}
shift || true
case "$cmd" in
  demo) exec python examples/hello_kan.py "$@" ;;
  test) exec python -m pytest tests "$@" ;;
  bench)
    python -m pip install -q -r requirements/bench.txt
    exec python bench/run.py "$@"
    ;;
  *)
    echo "usage: bash run.sh demo | test [pytest args] | bench [run.py args]" >&2
    exit 2
    ;;
esac
