#!/usr/bin/env bash
# On a CUDA machine: builds the pinned llama.cpp libraries with CUDA from the bundle made by
# bench/gpu_bundle.sh, runs drivevqa on the demo with generated models on the CPU and on the GPU
# (same binary, same flags, --device_map cpu vs auto) and prints a table: time, questions per
# second, and how many greedy answers agree. Build output stays in BUILD_DIR, so a second call on
# the same machine resumes the build. Full logs and results go to OUT_DIR.
# Usage: [PRESETS="tiny small"] [DTYPES="fp16 bf16"] [CUDA_ARCH=90] [CUDA_FA=ON] [ASK_PARITY=0] [DEMO_RUNS=1]
#        bench/gpu_check.sh [BUNDLE=.gpu] [BUILD_DIR=.gpubuild] [OUT_DIR=$OUT or /tmp/gpu-check]
# CUDA_FA=OFF skips llama.cpp's flash-attention kernels: a much shorter build, attention unfused.
set -euo pipefail
bundle=$(realpath "${1:-.gpu}")
work=$(realpath -m "${2:-.gpubuild}")
out=${3:-${OUT:-/tmp/gpu-check}}
mkdir -p "$work" "$out"
jobs=$(nproc)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt" || echo "no nvidia-smi"
if [ ! -e "$work/src/CMakeLists.txt" ]; then
  mkdir -p "$work/src" && tar xzf "$bundle/llama-src.tgz" -C "$work/src"
fi
start=$(date +%s)
if [ ! -e "$work/lib/.built" ]; then
  cmake -S "$work/src" -B "$work/lib" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DGGML_CUDA_FA="${CUDA_FA:-ON}" -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_OPENSSL=OFF >"$out/cmake.log" 2>&1
  cmake --build "$work/lib" -j "$jobs" --target llama mtmd >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
  touch "$work/lib/.built"
fi
echo "engine build: $(( $(date +%s) - start )) s (llama.cpp $(cat "$bundle/llama-commit.txt"))"
export LD_LIBRARY_PATH="$work/lib/bin:$bundle/lib"
bin="$bundle/bin/drivevqa"
if ldd "$bin" | grep -q "not found"; then ldd "$bin"; exit 1; fi
ldd "$bin" | grep -q "$work/lib/bin/libllama" || { echo "not linked to the CUDA build"; exit 1; }
data=$work/data
[ -e "$data/demo/questions.json" ] || "$bin" make-demo --out "$data/demo" >/dev/null 2>&1
for preset in ${PRESETS:-tiny small}; do
  [ -e "$data/$preset/model.gguf" ] || "$bin" make-model --out "$data/$preset" --preset "$preset" --seed 1 >/dev/null 2>&1
done
run_one() {  # preset device dtype
  local name=$1-$2-$3
  local t0=$(date +%s.%N)
  "$bin" run --json_file "$data/demo/questions.json" --image_base_dir "$data/demo" --model_7b "$data/$1" \
    --output_file "$out/$name.json" --stats_json "$out/$name.stats.json" --device_map "$2" --dtype "$3" \
    -t "$jobs" --overwrite >"$out/$name.log" 2>&1 || { echo "run $name failed:"; tail -5 "$out/$name.log"; return 1; }
  echo "$name $(awk "BEGIN {print $(date +%s.%N) - $t0}")" >>"$out/times.txt"
}
# ASK_PARITY=1: one question per model and camera count, greedy, free text, on the CPU and the GPU:
# the generated token ids side by side and where they first differ (0: the first token).
if [ "${ASK_PARITY:-0}" = 1 ]; then
  imgs=$(ls "$data"/demo/samples/CAM_FRONT/*.jpg | head -1)
  six=$(for c in CAM_FRONT CAM_FRONT_RIGHT CAM_FRONT_LEFT CAM_BACK CAM_BACK_RIGHT CAM_BACK_LEFT; do ls "$data"/demo/samples/$c/*.jpg | head -1; done | paste -sd,)
  echo "| model | images | kv | flash | first difference at token | CPU tokens | GPU tokens |"
  echo "|---|---|---|---|---|---|---|"
  for preset in ${PRESETS:-tiny small}; do
    for images in "$imgs" "$six"; do
      for fa in ${FLASH:-off on}; do
        for dev in 0 -1; do
          "$bin" ask --model "$data/$preset" --images "$images" --answer_format free --max_new_tokens 24 \
            --n_gpu_layers "$dev" --flash_attn "$fa" -t "$jobs" --show_tokens "Describe the scene ahead." \
            >"$out/ask-$preset-$dev.out" 2>"$out/ask-$preset-$dev.err" || true
        done
        python3 - "$out/ask-$preset-0.err" "$out/ask-$preset--1.err" "$preset" "$(echo "$images" | tr ',' '\n' | wc -l)" "$fa" <<'PY'
import sys
def toks(p):
    for line in open(p, errors="replace"):
        if line.startswith("tokens:"): return line.split()[1:]
    return None
a, b = toks(sys.argv[1]), toks(sys.argv[2])
if a is None or b is None:
    print(f"| {sys.argv[3]} | {sys.argv[4]} | default | {sys.argv[5]} | failed | {open(sys.argv[1]).read()[-200:]!r} | {open(sys.argv[2]).read()[-200:]!r} |")
else:
    diff = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    print(f"| {sys.argv[3]} | {sys.argv[4]} | default | {sys.argv[5]} | {'none' if diff is None else diff} | {' '.join(a[:8])} | {' '.join(b[:8])} |")
PY
      done
    done
  done
fi
[ "${DEMO_RUNS:-1}" = 1 ] || exit 0
: >"$out/times.txt"
for preset in ${PRESETS:-tiny small}; do
  for dtype in ${DTYPES:-fp16 bf16}; do
    run_one "$preset" cpu "$dtype"
    run_one "$preset" auto "$dtype"
  done
done
python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
times = dict(line.split() for line in open(os.path.join(out, "times.txt")))
print("| model | kv | CPU s | GPU s | CPU q/s | GPU q/s | GPU/CPU speed | same greedy answers |")
print("|---|---|---|---|---|---|---|---|")
for key in sorted({k.rsplit("-", 2)[0] + "-" + k.rsplit("-", 1)[1] for k in times}):
    preset, dtype = key.split("-")
    cpu, gpu = f"{preset}-cpu-{dtype}", f"{preset}-auto-{dtype}"
    if cpu not in times or gpu not in times: continue
    a = [i["answer"] for i in json.load(open(os.path.join(out, cpu + ".json")))]
    b = [i["answer"] for i in json.load(open(os.path.join(out, gpu + ".json")))]
    sc = json.load(open(os.path.join(out, cpu + ".stats.json")))
    sg = json.load(open(os.path.join(out, gpu + ".stats.json")))
    same = sum(x == y for x, y in zip(a, b))
    print(f"| {preset} | {dtype} | {float(times[cpu]):.1f} | {float(times[gpu]):.1f} | {sc['questions_per_second']:.2f} | "
          f"{sg['questions_per_second']:.2f} | {sg['questions_per_second'] / max(sc['questions_per_second'], 1e-9):.1f}x | {same} of {len(a)} |")
PY
