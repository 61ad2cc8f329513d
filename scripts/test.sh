#!/usr/bin/env bash
# Builds drivevqa and runs the test suite (GoogleTest through CTest).
#   scripts/test.sh                        the whole suite on the normal (Release) build in ./build
#   scripts/test.sh --sanitize             drivevqa's own code with AddressSanitizer + UndefinedBehaviorSanitizer, in ./build-asan
#   scripts/test.sh [--sanitize] ARGS...   ARGS go to ctest as they are, e.g. -R Journal (one test or a group)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sanitize=0
ctest_args=()
for arg in "$@"; do
  if [ "$arg" = "--sanitize" ]; then sanitize=1; else ctest_args+=("$arg"); fi
done
if [ "$sanitize" = 1 ]; then
  build=$root/build-asan
  "$root/scripts/setup.sh" "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDRIVEVQA_SANITIZE=ON
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp:print_suppressions=0
else
  build=$root/build
  "$root/scripts/setup.sh" "$build"
fi
cd "$build"
# ${arr[@]+...}: an empty array is "unbound" to set -u in bash before 4.4.
ctest -j "$(nproc)" --output-on-failure --timeout 1800 ${ctest_args[@]+"${ctest_args[@]}"}
