#!/usr/bin/env bash
# Set-up + run, in one command, on a fresh clone with only Python >= 3.10 and apt:
#   bash dev.sh demo [dream2flow demo flags]   run one full task on built-in defaults
#   bash dev.sh test [pytest flags]            run the test suite
# Both make (once) and use the virtualenv .venv at the repository root.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
need_apt=()
# MuJoCo renders offscreen through EGL (Mesa, software) on machines without a GPU.
for pkg in libegl1 libegl-mesa0 libgl1 libgles2; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})) && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "dev.sh: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Extras to install: "test" by default; CI adds "export" (torch + transformers for the export-tool tests).
extras=${D2F_EXTRAS:-test}
stamp=.venv/.d2f-installed-${extras//,/-}
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "dev.sh: creating .venv and installing dream2flow (first run takes a few minutes)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[${extras}]"
  touch "$stamp"
fi
export MUJOCO_GL=${MUJOCO_GL:-egl}

cmd=${1:-}
shift || true
case "$cmd" in
  demo) exec .venv/bin/dream2flow demo "$@" ;;
  test) exec .venv/bin/python -m pytest -q "$@" ;;
  setup) echo "dev.sh: .venv is ready" ;;
  *) echo "usage: bash dev.sh demo|test|setup [args]" >&2; exit 2 ;;
esac
