#!/usr/bin/env bash
# Packs what bench/gpu_check.sh needs on a GPU machine that has CUDA but none of our Debian
# packages: the pinned llama.cpp source (the parts the libraries are built from), the drivevqa
# binary of BUILD (default build/) and the shared libraries it links besides the engine and glibc.
# The binary is linked against libllama / libmtmd / libggml*.so.0: on the GPU machine the same
# pinned source is built there with CUDA, and those libraries take the place of the CPU ones.
# Usage: bench/gpu_bundle.sh [BUILD] [OUT_DIR]   (default OUT_DIR: .gpu, git-ignored)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
out=${2:-$root/.gpu}
engine_src=$(grep -o '^ENGINE_SOURCE_DIR:[A-Z]*=.*' "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2- || true)
[ -n "$engine_src" ] || engine_src=${XDG_CACHE_HOME:-$HOME/.cache}/drivevqa/llama.cpp-3.22.1/src
rm -rf "$out" && mkdir -p "$out/bin" "$out/lib"
(cd "$engine_src" && git archive --format=tar HEAD CMakeLists.txt cmake common ggml include src tools vendor licenses LICENSE) |
  gzip -6 >"$out/llama-src.tgz"
git -C "$engine_src" rev-parse HEAD >"$out/llama-commit.txt"
cp "$build/src/drivevqa" "$out/bin/"
ldd "$build/src/drivevqa" | awk '/=> \// {print $3}' |
  grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|libgomp|libllama|libmtmd|libggml[-a-z]*)\.so' |
  while read -r lib; do cp -L "$lib" "$out/lib/"; done
du -sh "$out"
