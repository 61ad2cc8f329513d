#!/usr/bin/env bash
# Builds drivevqa, makes the tiny random model and the demo data, and answers every demo question,
# printing each question and its answer, then scores the answers against the demo's ground truth.
# Everything lands in ./demo (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" "$root/build"
bin=$root/build/src/drivevqa
demo=$root/demo
[ -f "$demo/model/mmproj.gguf" ] || "$bin" make-model --out "$demo/model" --preset tiny --seed 1
[ -f "$demo/data/gt.json" ] || "$bin" make-demo --out "$demo/data"
# The tiny model's answers are gibberish (random weights); the pipeline around them is real.
# --max_new_tokens_cap keeps the demo short; fp16 KV is the fast choice on CPUs without native BF16.
"$bin" run --json_file "$demo/data/questions.json" --image_base_dir "$demo/data" \
  --output_file "$demo/results.json" --model_7b "$demo/model" --dtype fp16 \
  --max_new_tokens_cap 24 --print_answers --overwrite
echo "results: $demo/results.json"
# Scored against the demo's ground truth, as a user scores a real run (see README "Scoring").
"$bin" eval --predictions "$demo/results.json" --ground_truth "$demo/data/gt.json" \
  --json "$demo/scores.json" --report "$demo/report.html"
echo "scores: $demo/scores.json, report: $demo/report.html"
