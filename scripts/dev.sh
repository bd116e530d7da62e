#!/usr/bin/env bash
# The README's two commands. Each does all set-up first (idempotent, see setup.sh).
#   bash scripts/dev.sh run  [steerheal run options]   -> the main job on the embedded default
#   bash scripts/dev.sh test [pytest options]          -> the test suite
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh || { echo "[dev] set-up failed" >&2; exit 1; }
venv="${STEERHEAL_VENV:-$root/.venv}"
cmd="${1:-}"; shift || true
case "$cmd" in
  run)
    exec "$venv/bin/steerheal" run "$@" ;;
  test)
    "$venv/bin/python" -m pytest "$@"
    rc=$?
    # pytest's 5 = "no tests ran": never a pass, and say so instead of a bare failure.
    if [ "$rc" -eq 5 ]; then
      echo "[dev] pytest collected no tests: treating as a failure (exit 1)" >&2
      exit 1
    fi
    exit "$rc" ;;
  *)
    echo "usage: bash scripts/dev.sh run|test [args...]" >&2; exit 2 ;;
esac
