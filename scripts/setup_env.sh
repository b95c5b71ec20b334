#!/usr/bin/env bash
# Create (once) and activate the project's virtual environment in .venv, installing torch without pulling a
# multi-GB CUDA build on a machine that has no GPU. Sourced by quickstart.sh and test.sh; safe to re-run.
#   TORCH_SPEC       torch requirement to install            (default: torch==2.13.0)
#   TORCH_INDEX_URL  index for torch when there is no GPU     (default: PyTorch's CPU wheel index, or a mirror of it)
#   VENV             where the environment lives              (default: <repo>/.venv)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO_ROOT/.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: $PYTHON is missing or older than 3.10; install Python 3.10+ first" >&2; exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV" || { echo "error: '$PYTHON -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 2; }
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! python -c 'import torch' 2>/dev/null; then
    echo "==> installing $TORCH_SPEC"
    if command -v nvidia-smi >/dev/null 2>&1; then
        pip install "$TORCH_SPEC"                                    # PyPI's default build carries CUDA
    else
        # No GPU: a CPU wheel already on local disk (pip's configured find-links), else PyTorch's CPU index with
        # torch's dependencies from the package index pip is configured with: a mirror (PIP_INDEX_URL, or
        # `pip config set global.index-url ...`) is used alone, PyPI only when none is set.
        index="${PIP_INDEX_URL:-$(pip config get global.index-url 2>/dev/null || true)}"
        local_wheel=""
        for links in ${PIP_FIND_LINKS:-$(pip config get global.find-links 2>/dev/null || true)}; do
            compgen -G "$links/torch-*.whl" >/dev/null 2>&1 && local_wheel="$links"
        done
        if pip install --no-index "$TORCH_SPEC" 2>/dev/null; then :
        elif [ -n "$local_wheel" ]; then pip install "$TORCH_SPEC"    # the local CPU wheel, dependencies from the index
        else
            pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL" \
                --extra-index-url "${index:-https://pypi.org/simple}" || pip install "$TORCH_SPEC"
        fi
    fi
fi

# Re-install the project only when pyproject.toml changed since the last successful install.
stamp="$VENV/.gptstack-installed"
if [ ! -f "$stamp" ] || [ "$REPO_ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "==> installing gptstack and its dependencies into $VENV"
    pip install -e "$REPO_ROOT[dev]"
    touch "$stamp"
fi

# DeepSpeed picks its accelerator at import; without a GPU it must be told to use the CPU (gloo).
if ! command -v nvidia-smi >/dev/null 2>&1; then export DS_ACCELERATOR=cpu; fi
