#!/usr/bin/env bash
# Knowledge-base retrieval on a generated 100,000-entry KB: drivevqa's FTS5 index vs the seed's
# per-question linear scan, side by side in one run. Usage: bench/kb_bench.sh [entries] [queries] [scan_queries]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$root/build/bench/drivevqa_kb_bench" ] || "$root/scripts/setup.sh" "$root/build"
cmake --build "$root/build" --target drivevqa_kb_bench -j "$(nproc)" >/dev/null
"$root/build/bench/drivevqa_kb_bench" "${1:-100000}" "${2:-2000}" "${3:-5}" 2>/dev/null
