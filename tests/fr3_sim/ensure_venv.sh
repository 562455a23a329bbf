#!/usr/bin/env bash
# Make (once) franka-sim's own venv and print its python: franka-sim pins numpy 1.26.4 and
# mujoco<3.3, so it cannot share the runtime's venv. Used by .ci/run and by the libfranka tests'
# fixture (tests/test_control_libfranka.py), so a clean clone needs nothing else.
#   bash tests/fr3_sim/ensure_venv.sh [VENV_DIR]     (default: .cache/franka-sim-venv)
# Reused while its stamp matches requirements.txt; made under a lock (parallel CI jobs / pytest
# workers), into a fresh folder, and stamped only once franka-sim imports. Needs a CPython 3.9-3.12
# with venv + ensurepip (numpy 1.26.4 has no wheels for 3.13;
# Debian: python3-venv): $FRANKA_SIM_BASE_PYTHON, else the first of
# python3.12 .. python3.10, python3 that fits. Progress goes to stderr, the python's path to stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
req="$root/tests/fr3_sim/requirements.txt"
venv=${1:-$root/.cache/franka-sim-venv}
want=$(sha256sum "$req" | cut -d' ' -f1)

ok() { [ "$(cat "$venv/.d2f-stamp" 2>/dev/null)" = "$want" ] && "$venv/bin/python" -c "import franka_sim" >/dev/null 2>&1; }

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! ok; then
  base=${FRANKA_SIM_BASE_PYTHON:-}
  if [ -z "$base" ]; then
    for c in python3.12 python3.11 python3.10 python3; do
      if command -v "$c" >/dev/null && "$c" -c 'import sys, venv, ensurepip; assert (3, 9) <= sys.version_info[:2] <= (3, 12)' 2>/dev/null; then
        base=$c; break
      fi
    done
  fi
  [ -n "$base" ] || { echo "ensure_venv: franka-sim needs a CPython 3.9-3.12 with venv (set FRANKA_SIM_BASE_PYTHON)" >&2; exit 3; }
  t0=$SECONDS
  echo "ensure_venv: making franka-sim's venv in $venv ($("$base" --version))" >&2
  rm -rf "$venv"
  "$base" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$req" 2>&1 \
    | { grep -v "is ignored" || true; } >&2     # (this machine's pip config names absent local indexes)
  "$venv/bin/python" -c "import franka_sim"
  echo "$want" > "$venv/.d2f-stamp"
  echo "ensure_venv: franka-sim installed in $((SECONDS - t0)) s" >&2
fi
echo "$venv/bin/python"
