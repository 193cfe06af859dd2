#!/usr/bin/env bash
# Create / update the project's Python virtual environment at <repo>/.venv.
#
#   scripts/setup-python.sh               # interop venv: coremltools, numpy, scikit-learn (no torch)
#   scripts/setup-python.sh --with-torch  # + torch, onnx, onnxruntime (fixtures)
#   scripts/setup-python.sh --force       # delete .venv first and rebuild from scratch
#   scripts/setup-python.sh --coreai      # instead: the Core AI venv (.venv-coreai): coreai-core
#   scripts/setup-python.sh --coreai --with-torch   # + coreai-torch, torch (fixtures/coreai)
#
# Idempotent: a stamp file in .venv records a hash of the requirement files (and of the
# interpreter version); when nothing changed the script does nothing and exits at once.
# Python is only used as an oracle (scripts/interop.py) and to regenerate fixtures/
# (scripts/make_fixtures.py). Needs python3 (>= 3.11) and access to PyPI; nothing else.
# Environment: PYTHON=<interpreter> picks the interpreter (default: python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="$root/.venv"
py="${PYTHON:-python3}"
req_interop="$here/requirements-interop.txt"
req_fixtures="$here/requirements-fixtures.txt"
for arg in "$@"; do
    if [ "$arg" = "--coreai" ]; then
        # The Core AI venv: the same machinery with its own folder and requirement files.
        venv="$root/.venv-coreai"
        req_interop="$here/requirements-coreai.txt"
        req_fixtures="$here/requirements-coreai-fixtures.txt"
    fi
done

with_torch=0
force=0
for arg in "$@"; do
    case "$arg" in
        --with-torch) with_torch=1 ;;
        --force) force=1 ;;
        --coreai) ;;
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup-python: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { echo "setup-python: $*"; }

if ! command -v "$py" >/dev/null 2>&1; then
    say "error: '$py' not found; install Python 3.11+ (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
fi
pyver="$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    say "error: $py is Python $pyver; 3.11 or newer is needed (numpy 2.4 / coremltools 9.0 wheels)" >&2
    exit 1
fi

# Debian/Ubuntu split venv/ensurepip into python3-venv; install it when we can.
if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        pkg="python3-venv"
        minor="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        say "$py lacks venv/ensurepip; installing $pkg (and python$minor-venv if available) with apt-get"
        apt-get update -qq
        apt-get install -y -qq "$pkg" || true
        apt-get install -y -qq "python$minor-venv" >/dev/null 2>&1 || true
    fi
    if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        say "error: $py has no working venv/ensurepip module (Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
interop_hash="$(printf 'py=%s\n' "$pyver"; hash_of "$req_interop")"
interop_hash="$(printf '%s' "$interop_hash" | sha256sum | cut -d' ' -f1)"
fixtures_hash="$(printf 'py=%s\n' "$pyver"; hash_of "$req_interop" "$req_fixtures")"
fixtures_hash="$(printf '%s' "$fixtures_hash" | sha256sum | cut -d' ' -f1)"
stamp_interop="$venv/.anekit-interop.stamp"
stamp_fixtures="$venv/.anekit-fixtures.stamp"

if [ "$force" = 1 ] && [ -d "$venv" ]; then
    say "--force: removing $venv"
    rm -rf "$venv"
fi

if [ -d "$venv" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    say "$venv exists but its interpreter does not run; recreating it"
    rm -rf "$venv"
fi
if [ -d "$venv" ]; then
    venv_ver="$("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
    if [ "$venv_ver" != "$pyver" ]; then
        say "$venv uses Python $venv_ver but $py is $pyver; recreating it"
        rm -rf "$venv"
    fi
fi

if [ ! -d "$venv" ]; then
    say "creating virtual environment $venv with $py (Python $pyver)"
    "$py" -m venv "$venv"
fi

pip=("$venv/bin/python" -m pip --no-input --disable-pip-version-check)

need_interop=1
[ -f "$stamp_interop" ] && [ "$(cat "$stamp_interop")" = "$interop_hash" ] && need_interop=0
need_fixtures=0
if [ "$with_torch" = 1 ]; then
    need_fixtures=1
    [ -f "$stamp_fixtures" ] && [ "$(cat "$stamp_fixtures")" = "$fixtures_hash" ] && need_fixtures=0
fi

if [ "$need_interop" = 0 ] && [ "$need_fixtures" = 0 ]; then
    what="interop"
    [ "$with_torch" = 1 ] && what="interop + fixtures (torch)"
    say "$venv is up to date ($what); nothing to do"
    exit 0
fi

if [ "$need_fixtures" = 1 ]; then
    say "installing scripts/requirements-interop.txt + scripts/requirements-fixtures.txt into $venv"
    say "(torch from PyPI pulls its CUDA wheels: several GB, this takes a while)"
    rm -f "$stamp_interop" "$stamp_fixtures"
    # Both files in one pip call so pip resolves one consistent set.
    "${pip[@]}" install -r "$req_interop" -r "$req_fixtures"
    echo "$interop_hash" > "$stamp_interop"
    echo "$fixtures_hash" > "$stamp_fixtures"
elif [ "$need_interop" = 1 ]; then
    say "installing scripts/requirements-interop.txt into $venv"
    rm -f "$stamp_interop" "$stamp_fixtures"
    "${pip[@]}" install -r "$req_interop"
    echo "$interop_hash" > "$stamp_interop"
fi

say "checking the environment"
if [ "$venv" = "$root/.venv-coreai" ]; then
"$venv/bin/python" - "$with_torch" <<'PYEOF'
import sys, warnings
warnings.simplefilter("ignore")
import numpy
from coreai._compiler import ir  # the MLIR bindings the oracle prints with
import coreai.runtime  # the Linux CPU runtime the oracle runs models with
from importlib.metadata import version
print("setup-python:   coreai-core", version("coreai-core"), "numpy", numpy.__version__)
if sys.argv[1] == "1":
    import torch, coreai_torch
    print("setup-python:   torch", torch.__version__, "coreai-torch", coreai_torch.__version__)
PYEOF
else
"$venv/bin/python" - "$with_torch" <<'PYEOF'
import sys, warnings
warnings.simplefilter("ignore")
import logging
logging.disable(logging.CRITICAL)
import numpy, coremltools
print("setup-python:   coremltools", coremltools.__version__, "numpy", numpy.__version__)
if sys.argv[1] == "1":
    import torch, sklearn, onnx, onnxruntime
    print("setup-python:   torch", torch.__version__, "scikit-learn", sklearn.__version__,
          "onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__)
PYEOF
fi
say "done: use $venv/bin/python"
