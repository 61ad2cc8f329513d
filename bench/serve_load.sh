#!/usr/bin/env bash
# drivevqa serve under load, side by side in one run, on loopback only:
#   a  drivevqa run over the workload (the reference: one process, frames in order)
#   s  drivevqa serve with 8 concurrent clients sending every question as its own OpenAI chat request
#      (question, category and the six camera JPEGs as data: URIs), 429 answered by a retry after 1 s
#   d  llama-server of the same llama.cpp tree with 4 slots and 8 concurrent clients, given drivevqa's
#      exact prompts, answer grammars and budgets (/completion)
# Workload: make-demo --benchmark (4 frames x 20 questions, 1600x900 JPEGs), the tiny model at
# full resolution, real answer lengths (bench/workloads/real_budgets.json). Bounded: 80 requests
# per row, each server stopped at the end. Goals: s/a >= 0.8, s/d >= 2, no failed request.
# Usage: bench/serve_load.sh [build-dir]   (BENCH_THREADS=2, BENCH_MODEL=tiny|small)
# Takes about 5 minutes on 2 cores. Results and logs stay in <build-dir>/bench-serve.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
"$root/scripts/setup.sh" "$build" >/dev/null
bin=$build/src/drivevqa
client=$build/bench/drivevqa_server_client
# shellcheck disable=SC1091
. "$build/bench/engine.env"
threads=${BENCH_THREADS:-2}
model=${BENCH_MODEL:-tiny}
work=$build/bench-serve
dir=$work/results-$model
mkdir -p "$dir"
data=$work/data
[ -f "$data/questions.json" ] || "$bin" make-demo --benchmark --out "$data" 2>/dev/null
[ -f "$work/$model/mmproj.gguf" ] || "$bin" make-model --out "$work/$model" --preset "$model" --seed 1 2>/dev/null
case $model in
  tiny) sizing=(); max_tokens=16384; ctx=16384 ;;
  small) sizing=(--max_pixels 200704); max_tokens=256; ctx=4096 ;;
  *) echo "BENCH_MODEL: tiny or small" >&2; exit 2 ;;
esac
budgets=(--prompts "$root/bench/workloads/real_budgets.json")
port=18452  # serve's; llama-server's is the next (the first one's closed connections may still hold it)
server_pid=
stop_server() { [ -n "$server_pid" ] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }; server_pid=; }
trap stop_server EXIT

common=(--model_7b "$work/$model" --dtype fp16 -t "$threads" "${sizing[@]}" "${budgets[@]}")
echo "[$model] a: drivevqa run" >&2
rm -rf "$dir/prompts"
"$bin" run --json_file "$data/questions.json" --image_base_dir "$data" "${common[@]}" --overwrite \
  --output_file "$dir/a-results.json" --stats_json "$dir/a.json" --dump_prompts "$dir/prompts" 2>"$dir/a.log"

echo "[$model] s: drivevqa serve, 8 clients" >&2
OMP_WAIT_POLICY=passive "$bin" serve --port $port "${common[@]}" >"$dir/s-server.log" 2>&1 &
server_pid=$!
"$client" --openai --port $port --results "$dir/a-results.json" --image_base_dir "$data" --clients 8 \
  --out "$dir/s.json" >&2
stop_server

echo "[$model] d: llama-server, 4 slots, 8 clients" >&2
LLAMA_MEDIA_MARKER='<__media__>' "$ENGINE_SERVER" -m "$work/$model/model.gguf" --mmproj "$work/$model/mmproj.gguf" -t "$threads" \
  -np 4 -c $((ctx * 4)) --host 127.0.0.1 --port $((port + 1)) --no-webui --cache-prompt --image-min-tokens 4 \
  --image-max-tokens "$max_tokens" >"$dir/d-server.log" 2>&1 &
server_pid=$!
"$client" --port $((port + 1)) --prompts "$dir/prompts" --results "$dir/a-results.json" --image_base_dir "$data" --clients 8 \
  --out "$dir/d.json" "${sizing[@]}" --prompts_file "$root/bench/workloads/real_budgets.json" >&2
stop_server

"$client" --serve_table "$dir" --title "drivevqa serve under load: $model model, $threads threads, real token budgets, 80 requests"
