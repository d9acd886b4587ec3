#!/usr/bin/env bash
# Install photoembed from this checkout into .venv, with the desktop app.
#   bash packaging/install.sh            the app (extra "gui")
#   bash packaging/install.sh dev        the app plus the development and benchmark tools
# Without an NVIDIA GPU, PyTorch comes from PyTorch's CPU-only wheel index: about 1 GB instead of the
# 6 GB that PyPI's default Linux build brings (4 GB of it CUDA libraries a CPU machine never uses). Set
# PHOTOEMBED_TORCH=default to take PyPI's build anyway, or =cpu to force the CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
extras=gui
[ "${1:-}" = "dev" ] && extras=dev
# The same bounds as pyproject.toml: the CPU build must satisfy them, or pip would replace it.
torch_specs=("torch>=2.4,<=2.14.1" "torchvision>=0.19,<=0.29.1")

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip

route=${PHOTOEMBED_TORCH:-auto}
if [ "$route" = auto ]; then
    if [ "$(uname -s)" != Linux ] || command -v nvidia-smi >/dev/null 2>&1 || [ -e /proc/driver/nvidia/version ]; then
        route=default   # macOS and Windows wheels carry no CUDA; with a GPU, CUDA is what you want
    else
        route=cpu
    fi
fi
# torch and torchvision must be one matching pair: their C++ operators are registered against each other.
works() { .venv/bin/python -c "import torch, torchvision.ops; torchvision.ops.nms" >/dev/null 2>&1; }
if [ "$route" = cpu ] && ! works; then
    echo "Installing PyTorch's CPU-only build (no NVIDIA GPU found)..."
    # --isolated: from PyTorch's CPU index alone, whatever pip's configuration adds (mirrors, local wheels).
    if ! .venv/bin/python -m pip install --isolated --quiet --timeout 20 --retries 1 \
            --index-url https://download.pytorch.org/whl/cpu "${torch_specs[@]}" || ! works; then
        echo "PyTorch's CPU index could not be reached: installing the default build instead." >&2
        .venv/bin/python -m pip uninstall --quiet --yes torch torchvision >/dev/null 2>&1 || true
    fi
fi
.venv/bin/python -m pip install --quiet -e ".[$extras]"
echo "Installed: $(du -sh .venv | cut -f1) in .venv. Start the app with .venv/bin/photoembed"
