#!/usr/bin/env bash
# Builds drivevqa and runs the whole test suite (GoogleTest through CTest).
#   scripts/test.sh              the normal (Release) build in ./build
#   scripts/test.sh --sanitize   drivevqa's own code with AddressSanitizer + UndefinedBehaviorSanitizer, in ./build-asan
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--sanitize" ]; then
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
ctest -j "$(nproc)" --output-on-failure --timeout 1800
