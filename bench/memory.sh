#!/usr/bin/env bash
# Memory of long inputs and long runs:
#   1. peak memory of reading a question file of 100,000 items (`drivevqa route`, which reads and
#      routes the whole file as `run` does before answering);
#   2. resident memory sampled through a run of 500 items (the demo's frames, questions repeated
#      with a running number so every item is distinct): the growth between the 100th and the
#      500th answer shows whether anything accumulates per item.
# Usage: bench/memory.sh [build-dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
[ -x "$build/src/drivevqa" ] || "$root/scripts/setup.sh" "$build" >/dev/null
bin=$build/src/drivevqa
work=$build/bench-memory
mkdir -p "$work"
[ -f "$work/demo/questions.json" ] || "$bin" make-demo --out "$work/demo" 2>/dev/null
[ -f "$work/model/mmproj.gguf" ] || "$bin" make-model --out "$work/model" --preset tiny --seed 1 2>/dev/null

# The demo's answerable items, repeated with numbered questions.
make_items() {  # count output
  python3 - "$work/demo/questions.json" "$1" "$2" <<'PY'
import json, sys
items = [i for i in json.load(open(sys.argv[1])) if i.get("question") and "missing" not in json.dumps(i["img_paths"])]
n = int(sys.argv[2])
out = []
for k in range(n):
    item = dict(items[k % len(items)])
    item["question"] = item["question"] + f" (item {k})"
    out.append(item)
json.dump(out, open(sys.argv[3], "w"))
PY
}
command -v python3 >/dev/null || { sudo=$([ "$(id -u)" = 0 ] || echo sudo); $sudo apt-get install -y -qq python3 >/dev/null; }
make_items 100000 "$work/items-100k.json"
/usr/bin/time -f "%M" -o "$work/route.rss" "$bin" route --json_file "$work/items-100k.json" >/dev/null
printf "reading 100,000 items (%s MB file): peak resident memory %d MB\n" \
  "$(( $(stat -c %s "$work/items-100k.json") / 1048576 ))" "$(( $(cat "$work/route.rss") / 1024 ))"

make_items 500 "$work/items-500.json"
rm -f "$work/out.json" "$work/out.json.journal"
"$bin" run --json_file "$work/items-500.json" --image_base_dir "$work/demo" --output_file "$work/out.json" \
  --model_7b "$work/model" --dtype fp16 --image_max_tokens 16 --max_new_tokens_cap 4 -t 2 2>"$work/run.log" &
pid=$!
: >"$work/samples.txt"
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
  done_items=$(( $(wc -l <"$work/out.json.journal" 2>/dev/null || echo 1) - 1 ))
  [ -n "$rss" ] && echo "$done_items $rss" >>"$work/samples.txt"
  sleep 0.2
done
wait "$pid"
awk '$1 >= 100 && !a { a = $2 } $1 >= 100 { last = $2; n = $1 } END {
  printf "run of 500 items: resident memory %d MB after 100 answers, %d MB after %d; growth %d KB (%.1f KB per item)\n",
         a / 1024, last / 1024, n, last - a, (last - a) / (n - 100) }' "$work/samples.txt"
