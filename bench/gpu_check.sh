#!/usr/bin/env bash
# On a CUDA machine: builds the pinned llama.cpp libraries with CUDA from the bundle made by
# bench/gpu_bundle.sh, runs drivevqa on the demo with generated models on the CPU and on the GPU
# (same binary, same flags, --device_map cpu vs auto) and prints a table: time, questions per
# second, and how many greedy answers agree. Build output stays in BUILD_DIR, so a second call on
# the same machine resumes the build. Full logs and results go to OUT_DIR.
# Usage: [PRESETS="tiny small"] [DTYPES="fp16 bf16"] [CUDA_ARCH=90] [CUDA_FA=ON]
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
