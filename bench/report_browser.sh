#!/usr/bin/env bash
# Renders `drivevqa eval --report` pages in a real browser (headless Chromium) and checks that the
# bar chart is drawn, by counting the bar colour's pixels in the screenshots.
#
# Usage: bench/report_browser.sh [RESULTS.json [GT.json]]
#   no argument: makes the demo, answers it with a tiny random model, and scores that run;
#   RESULTS.json: scores that results file instead (against GT.json, default: the demo's gt.json).
# A second page scores the demo's gt.json against itself: every bar at its full length.
# Installs Debian's chromium when it is missing (as root or through sudo). Prints the pixel counts;
# exits non-zero when a chart has fewer bar pixels than its bars must cover.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
bar_colour=2a7ab9

if ! command -v chromium >/dev/null 2>&1; then
  echo "report_browser: installing chromium"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium
fi

[ -d "$build" ] || "$root/scripts/setup.sh" "$build"
# Builds share the folder with other builds: one at a time.
flock /tmp/drivevqa-build.lock cmake --build "$build" -j "$(nproc)" --target drivevqa drivevqa_png_colour_count >/dev/null
drivevqa="$build/src/drivevqa"
count="$build/bench/drivevqa_png_colour_count"

work=$(mktemp -d /tmp/drivevqa-report-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$drivevqa" make-demo --out "$work/demo" 2>/dev/null
results=${1:-}
gt=${2:-$work/demo/gt.json}
if [ -z "$results" ]; then
  "$drivevqa" make-model --out "$work/tiny" --preset tiny --seed 1 2>/dev/null
  results="$work/results.json"
  "$drivevqa" run --json_file "$work/demo/questions.json" --image_base_dir "$work/demo" --output_file "$results" \
    --model_7b "$work/tiny" --dtype fp16 --image_max_tokens 32 --max_new_tokens_cap 12 -t "$(nproc)" 2>/dev/null
fi

# render PAGE.html PNG: a 1200x1600 screenshot of the page.
render() {
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --force-color-profile=srgb --screenshot="$2" --window-size=1200,1600 "file://$1" >/dev/null 2>&1
  [ -s "$2" ] || { echo "report_browser: chromium wrote no screenshot for $1" >&2; exit 1; }
}

# check NAME RESULTS MIN_PIXELS_PER_BAR: eval with --report, render, count the bar pixels.
status=0
check() {
  local name=$1 predictions=$2 per_bar=$3
  "$drivevqa" eval --predictions "$predictions" --ground_truth "$gt" --report "$work/$name.html" \
    --json "$work/$name.json" >"$work/$name.txt" 2>/dev/null
  local bars
  bars=$(grep -o '<rect' "$work/$name.html" | wc -l)
  render "$work/$name.html" "$work/$name.png"
  local minimum=$((bars * per_bar))
  printf '%-13s %d bars, ' "$name:" "$bars"
  "$count" "$work/$name.png" "$bar_colour" --min "$minimum" || {
    echo "report_browser: $name: fewer than $minimum bar pixels: the chart was not drawn" >&2
    status=1
  }
}

# A zero bar is a 3 px stub (60 px of colour); a full bar is 560 x 20 px.
check results "$results" 40
check ground-truth "$gt" 5000
grep -E '^(overall|Perception-MCQs)' "$work/results.txt" || true
exit $status
