#!/usr/bin/env bash
# Installs the Debian packages quantllm builds and tests with. Idempotent; run as root on
# a fresh Debian bookworm machine (or with sudo). Packages already present are skipped.
set -euo pipefail
packages=(
  cmake g++ make pkg-config git
  libopenblas-dev          # matrix products (BLAS)
  nlohmann-json3-dev       # config.json, tokenizer.json, safetensors headers
  libcli11-dev             # command-line parsing
  libpcre2-dev             # Unicode regexes of byte-level tokenizers
  libfmt-dev               # formatting
  libgtest-dev             # unit tests
  libbenchmark-dev         # micro-benchmarks
  librsvg2-bin             # renders the comparison chart (SVG) to PNG in tests
  time                     # GNU time: peak memory in bench/gptq_memory.sh
  pybind11-dev             # the Python package's extension module (python/, QUANTLLM_PYTHON)
  python3-dev              # Python.h for it (Debian's python3, which CMake prefers)
  python3-numpy            # the second reader of our checkpoint formats in the tests (tests/reference)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Node.js + npm run llama.cpp itself (node-llama-cpp) in the interoperability tests; a machine
# that already has a Node.js (e.g. from another repository) keeps it.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
echo "setup: all packages present"
