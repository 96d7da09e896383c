#!/usr/bin/env bash
# Installs llama.cpp itself, as the npm package node-llama-cpp with its prebuilt x86-64 CPU
# binaries, for the interoperability tests (tests/interop). It goes into a cache directory outside
# the source tree ($QUANTLLM_CACHE/node-llama-cpp, default ~/.cache/quantllm/node-llama-cpp) so a
# CI cache can keep it between runs and nothing under node_modules/ is ever tracked. Idempotent:
# a cache whose installed versions match the pinned ones is left alone, so reruns need no network.
#
# Versions are pinned so that every machine runs the same llama.cpp build; the tests pass the
# install directory to tests/interop/llama_logits.mjs through QUANTLLM_LLAMA_CPP_DIR.
# --omit=optional skips the CUDA/Vulkan/Metal binary packages (hundreds of MB); the CPU one is
# named explicitly. Install scripts are disabled: node-llama-cpp's postinstall would otherwise try
# to download or build llama.cpp; the prebuilt binary in @node-llama-cpp/linux-x64 is all we need.
set -euo pipefail

version="${QUANTLLM_NODE_LLAMA_CPP_VERSION:-3.22.1}"
cache="${QUANTLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/quantllm}"
dir="$cache/node-llama-cpp"

installed_version() {  # prints the version of package $1 installed in $dir, or nothing
  local pj="$dir/node_modules/$1/package.json"
  [ -f "$pj" ] && node -p "require(process.argv[1]).version" "$pj" 2>/dev/null || true
}

if [ "$(installed_version node-llama-cpp)" = "$version" ] &&
   [ "$(installed_version @node-llama-cpp/linux-x64)" = "$version" ]; then
  echo "install-llama-cpp: node-llama-cpp $version already in $dir"
  exit 0
fi

command -v npm >/dev/null || { echo "install-llama-cpp: npm not found (run scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$dir"
# A private package.json keeps npm from walking up into some other project's tree.
[ -f "$dir/package.json" ] || echo '{"name":"quantllm-llama-cpp","private":true}' >"$dir/package.json"
cd "$dir"
NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund --ignore-scripts --omit=optional \
  "node-llama-cpp@$version" "@node-llama-cpp/linux-x64@$version"
echo "install-llama-cpp: node-llama-cpp $version installed in $dir"
