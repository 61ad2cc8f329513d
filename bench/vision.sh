#!/usr/bin/env bash
# The vision tower per image, dense-mask against per-window attention, side by side in one run:
# for each model (tiny, small, vision7b = Qwen2.5-VL-7B's exact vision tower) and each image size
# (a 1600x900 camera JPEG at full resolution, 1596x896 = 1,824 tokens, and at --max_pixels 200704),
# one process per path encodes the image (fastest of BENCH_REPEAT) and /usr/bin/time reports its
# peak resident memory. "dense" is llama.cpp's own path (MTMD_QWEN25VL_WINDOW_ATTN=dense: full
# attention with an n_pos x n_pos mask); "windowed" is engine patch 0001, the default. Each with
# the CPU's flash-attention kernel (the engine's default for the vision tower; it skips KV tiles the
# mask hides entirely, so dense costs little more than windowed there) and with the plain f32 one
# (what a backend without flash attention runs: there dense pays for every masked pair).
# The last column is max |windowed - dense| / max |dense| over the image's embedding.
# Usage: bench/vision.sh [build-dir]   (BENCH_MODELS="tiny small vision7b", BENCH_THREADS=2, BENCH_REPEAT=2)
# vision7b at full resolution takes minutes per encode on 2 cores; the whole script about 25 minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
"$root/scripts/setup.sh" "$build" >/dev/null
bin=$build/src/drivevqa
bench=$build/bench/drivevqa_vision_bench
threads=${BENCH_THREADS:-2}
repeat=${BENCH_REPEAT:-2}
work=$build/bench-vision
mkdir -p "$work"
[ -f "$work/demo/questions.json" ] || "$bin" make-demo --out "$work/demo" 2>/dev/null
image=$(find "$work/demo" -name '*.jpg' -path '*CAM_FRONT/*' | sort | head -1)

rows=$work/rows.tsv
: >"$rows"
for model in ${BENCH_MODELS:-tiny small vision7b}; do
  [ -f "$work/$model/mmproj.gguf" ] || "$bin" make-model --out "$work/$model" --preset "$model" --seed 1 2>/dev/null
  for kernel in flash plain; do
    for pixels in 12845056 200704; do
      # vision7b's full-resolution encode takes minutes: once is enough.
      r=$repeat
      [ "$model" = vision7b ] && [ "$pixels" = 12845056 ] && r=1
      for mode in dense windowed; do
        echo "[$model, max_pixels $pixels, $kernel kernel] $mode" >&2
        tag=$model-$pixels-$kernel-$mode
        if [ $mode = dense ]; then export MTMD_QWEN25VL_WINDOW_ATTN=dense; else unset MTMD_QWEN25VL_WINDOW_ATTN; fi
        /usr/bin/time -f "%M" -o "$work/$tag.rss" "$bench" "$work/$model" "$image" --max_pixels "$pixels" \
          --repeat "$r" --threads "$threads" --flash_attn "$([ $kernel = flash ] && echo on || echo off)" \
          --dump "$work/$tag.f32" >"$work/$tag.json" 2>"$work/$tag.log"
        unset MTMD_QWEN25VL_WINDOW_ATTN
      done
      printf "%s\t%s\t%s\n" "$model" "$pixels" "$kernel" >>"$rows"
    done
  done
done

python3 - "$work" "$rows" <<'PY'
import json, sys, array
work, rows = sys.argv[1], sys.argv[2]
def load(tag):
    info = json.load(open(f"{work}/{tag}.json"))
    info["peak_mb"] = int(open(f"{work}/{tag}.rss").read().split()[-1]) / 1024
    emb = array.array("f")
    with open(f"{work}/{tag}.f32", "rb") as f:
        emb.frombytes(f.read())
    return info, emb
print("| model | image (tokens) | kernel | dense s | windowed s | windowed/dense | dense peak MB | windowed peak MB | max-abs rel. diff |")
print("|---|---|---|---|---|---|---|---|---|")
for line in open(rows):
    model, pixels, kernel = line.split()
    d, de = load(f"{model}-{pixels}-{kernel}-dense")
    w, we = load(f"{model}-{pixels}-{kernel}-windowed")
    scale = max(abs(x) for x in de)
    diff = max(abs(a - b) for a, b in zip(we, de))
    print(f"| {model} | {d['width']}x{d['height']} ({d['tokens']}) | {kernel} | {d['encode_seconds']:.2f} | {w['encode_seconds']:.2f} | "
          f"{w['encode_seconds'] / d['encode_seconds']:.2f}x | {d['peak_mb']:.0f} | {w['peak_mb']:.0f} | {diff / scale:.1e} |")
PY
