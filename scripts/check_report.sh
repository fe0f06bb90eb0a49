#!/usr/bin/env bash
# Render a run's report (RUN_DIR/report/index.html, written by `python -m byov.report RUN_DIR`) in
# headless Chromium and save a full-page screenshot, to check what a reader's browser shows.
#   bash scripts/check_report.sh RUN_DIR [SCREENSHOT.png] [WIDTH]
# Default screenshot: RUN_DIR/report/screenshot.png, width 1400 px; the height is measured from
# the page. Needs Chromium (Debian: apt-get update && apt-get install -y chromium); CI does not
# run this script.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash scripts/check_report.sh RUN_DIR [SCREENSHOT.png] [WIDTH]" >&2
  exit 2
fi
run=$1
page=$(cd "$run/report" 2>/dev/null && pwd)/index.html || true
if [ ! -f "$page" ]; then
  echo "check_report.sh: $run/report/index.html does not exist; write it first with" \
       "python -m byov.report $run" >&2
  exit 2
fi
shot=${2:-$(dirname "$page")/screenshot.png}
width=${3:-1400}
browser=""
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then browser=$name; break; fi
done
if [ -z "$browser" ]; then
  echo "check_report.sh: no Chromium found; install it (Debian: apt-get update &&" \
       "apt-get install -y chromium)" >&2
  exit 2
fi
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --allow-file-access-from-files
       --virtual-time-budget=5000)
# headless --screenshot captures the window only: make the window as tall as the page, estimated
# from the figures' PNG sizes (scaled to the content width) plus the text; an over-estimate only
# adds white space at the bottom
height=$(python3 - "$page" "$width" <<'EOF'
import os, re, struct, sys
page, width = sys.argv[1], int(sys.argv[2])
html = open(page, encoding="utf-8").read()
content = min(width, 1360) - 32
total = 900 + 22 * html.count("<tr") + 18 * html.count("\n")
for src in re.findall(r'<img src="([^"]+)"', html):
    with open(os.path.join(os.path.dirname(page), src), "rb") as f:
        w, h = struct.unpack(">II", f.read(24)[16:24])
    total += int(h * min(1.0, content / w)) + 80
print(total)
EOF
)
"$browser" "${flags[@]}" --window-size="$width,$height" --screenshot="$shot" "file://$page" \
  >/dev/null 2>&1
if [ ! -s "$shot" ]; then
  echo "check_report.sh: $browser wrote no screenshot to $shot" >&2
  exit 1
fi
echo "rendered $page in $browser at ${width}x${height} -> $shot"
