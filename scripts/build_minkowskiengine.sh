#!/usr/bin/env bash
# Optional: build MinkowskiEngine 0.5.4 (sdist only, unmaintained) for the "minkowski" sparse backend, on a
# CPU, in its own virtual environment (it needs numpy<2 and setuptools<60 to build). Takes 10-35 minutes.
#   bash scripts/build_minkowskiengine.sh            # -> .venv-minkowski with torch, ME and pcseg's test deps
#   PYTHONPATH=. .venv-minkowski/bin/python -m pytest --noconftest tests/sparse/test_minkowski_backend.py
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-minkowski}
WORK=${WORK:-build/minkowskiengine}
if ! dpkg -s libopenblas-dev >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libopenblas-dev build-essential python3-dev
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY=$(cd "$VENV" && pwd)/bin/python
"$VENV/bin/pip" install -q "torch==2.13.0" "numpy<2" wheel ninja pytest
"$VENV/bin/pip" install -q "setuptools<60" || true   # torch asks for a newer one; ME's setup.py needs this
mkdir -p "$WORK"
[ -f "$WORK/MinkowskiEngine-0.5.4.tar.gz" ] || \
    "$VENV/bin/pip" download -q --no-deps --no-binary :all: minkowskiengine==0.5.4 -d "$WORK"
rm -rf "$WORK/MinkowskiEngine-0.5.4" && tar xzf "$WORK/MinkowskiEngine-0.5.4.tar.gz" -C "$WORK"
# Python 3.11: Sequence lives in collections.abc
grep -rl "from collections import Sequence" "$WORK/MinkowskiEngine-0.5.4/MinkowskiEngine" | xargs sed -i \
    -e 's/^from collections import Sequence, namedtuple$/from collections import namedtuple\nfrom collections.abc import Sequence/' \
    -e 's/^from collections import Sequence$/from collections.abc import Sequence/'
(cd "$WORK/MinkowskiEngine-0.5.4" && MAX_JOBS=2 "$PY" setup.py bdist_wheel --cpu_only --blas=openblas)
"$VENV/bin/pip" install -q --no-deps "$WORK"/MinkowskiEngine-0.5.4/dist/*.whl
"$VENV/bin/python" -c "import MinkowskiEngine as ME; print('MinkowskiEngine', ME.__version__)"
