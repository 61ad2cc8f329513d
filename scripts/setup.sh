#!/usr/bin/env bash
# Installs what drivevqa needs from Debian 12 (only what is missing), then configures and builds it.
# Usage: scripts/setup.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true

packages=(build-essential cmake git pkg-config
          nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
          libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev libsqlite3-dev
          libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev
          libstemmer-dev wordnet-base)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come from another Node.js distribution (it is part of nodesource's nodejs): check the command.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The first configure fetches and builds llama.cpp into ~/.cache/drivevqa (several minutes, once).
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build" -j "$(nproc)"
