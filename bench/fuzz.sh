#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of outside input (fuzz/), with libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer, clang from Debian. Builds into <root>/build-fuzz, runs each target
# for SECONDS (default 600) with JOBS targets at a time (default 2), starting from fuzz/corpus/<target>
# (new interesting inputs are kept in build-fuzz/corpus/<target>), and prints the executions per target.
# Any crash, leak or sanitizer report stops that target with its reproducer in build-fuzz/artifacts/.
# Usage: bench/fuzz.sh [SECONDS] [JOBS] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-600}
jobs=${2:-2}
shift $(( $# > 2 ? 2 : $# )) || true
build=$root/build-fuzz
command -v clang++ >/dev/null || "$root/scripts/setup.sh" "$root/build" >/dev/null
if ! command -v clang++ >/dev/null || [ ! -e "$(clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
fi
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDRIVEVQA_FUZZ=ON \
  -DDRIVEVQA_SANITIZE=ON -DDRIVEVQA_BUILD_TESTS=OFF >/dev/null
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(question_file kb_file safetensors_header model_configs journal image classifier gguf_check)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}" >/dev/null
mkdir -p "$build/artifacts" "$build/logs"
run_one() {
  local t=$1
  mkdir -p "$build/corpus/$t"
  "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "$build/corpus/$t" "$root/fuzz/corpus/$t" >"$build/logs/$t.log" 2>&1
}
status=0
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  pids=()
  for t in "${targets[@]:i:jobs}"; do run_one "$t" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
done
printf "\n| target | seconds | executions | corpus | result |\n|---|---|---|---|---|\n"
for t in "${targets[@]}"; do
  log=$build/logs/$t.log
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  corpus=$(ls "$build/corpus/$t" | wc -l)
  result=$(grep -qE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY" "$log" && echo "FAILED, see $log" || echo "clean")
  printf "| %s | %s | %s | %s | %s |\n" "$t" "$seconds" "$runs" "$corpus" "$result"
done
exit $status
