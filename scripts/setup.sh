#!/usr/bin/env bash
# Sets up everything pcseg needs on a fresh Debian machine: the system libraries Open3D and headless
# rendering need, a virtual environment, and the package with its dependencies. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# Open3D needs libusb/libGL/libgomp; headless rendering (OffscreenRenderer) needs Mesa's software Vulkan.
SYSTEM_PACKAGES="libusb-1.0-0 libgl1 libgomp1 libvulkan1 mesa-vulkan-drivers"
# PCSEG_TEST_TOOLS=1 (make test) adds what only the tests need: headless Chromium opens the HTML report;
# a virtual X display (Xvfb), xdotool and ImageMagick's `import` open, drive and photograph the Open3D window.
if [ "${PCSEG_TEST_TOOLS:-0}" = 1 ]; then
    SYSTEM_PACKAGES="$SYSTEM_PACKAGES chromium xvfb xdotool imagemagick"
fi
missing=""
for pkg in $SYSTEM_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    if ! command -v apt-get >/dev/null; then
        echo "pcseg setup: please install the system libraries:$missing" >&2
    elif [ "$(id -u)" = 0 ]; then
        echo "pcseg setup: apt-get install$missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "pcseg setup: sudo apt-get install$missing"
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
if [ "${PCSEG_TEST_TOOLS:-0}" = 1 ]; then
    # The tests also cover the 2D baseline: torchvision's PyPI wheels need the matching CUDA build of
    # torch (it runs fine on a CPU), so pip chooses the pair (a ~3 GB download the first time).
    "$VENV/bin/pip" install -q -e ".[test,2d]"
else
    # The CPU build of torch when the machine offers it (no multi-GB CUDA download); otherwise pip's choice.
    # A torch already there (e.g. the one `make test` paired with torchvision) is kept: replacing it
    # would break torchvision.
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        "$VENV/bin/pip" install -q "torch==2.13.0" 2>/dev/null || "$VENV/bin/pip" install -q torch
    fi
    "$VENV/bin/pip" install -q -e .  # the package alone: the test tools (pytest, spconv) come with make test
fi
echo "pcseg setup: ready in $VENV"
