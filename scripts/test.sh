#!/usr/bin/env bash
# Builds drivevqa and runs the whole test suite (GoogleTest through CTest).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
"$root/scripts/setup.sh" "$build"
cd "$build"
ctest -j "$(nproc)" --output-on-failure --timeout 900
