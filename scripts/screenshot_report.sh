#!/usr/bin/env bash
# Screenshot an HTML report with headless Chromium (Debian: apt-get install chromium), e.g.
#   scripts/screenshot_report.sh out/demo/report/index.html docs/images/report_screenshot.png [1280,2400]
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 REPORT_HTML OUT_PNG [WIDTH,HEIGHT]" >&2
    exit 2
fi
page=$(realpath "$1")
out=$(realpath -m "$2")
size=${3:-1280,2400}
[ -f "$page" ] || { echo "$0: $page: no such file" >&2; exit 2; }
exe=""
for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null; then exe=$name; break; fi
done
[ -n "$exe" ] || { echo "$0: no Chromium found; Debian: apt-get install chromium" >&2; exit 2; }
profile=$(mktemp -d)  # a throwaway profile: nothing is left in ~
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
"$exe" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
    --screenshot="$out" --window-size="$size" "file://$page" 2>/dev/null
[ -f "$out" ] || { echo "$0: Chromium wrote no screenshot" >&2; exit 1; }
echo "wrote $out"
