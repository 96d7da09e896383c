#!/usr/bin/env bash
# Runs bench/quality.sh on the lent many-core machine (the device tool): unpacks the CLI bundle and a
# reference model carried in .dev/, then runs the given job groups in parallel, each with its own
# threads, under one time limit. Results land in $OUT (quality-*.jsonl).
#   bench/device_quality.sh MODEL_TAR LIMIT_S "JOBTAG:THREADS:ENV:jobs" ...
set -uo pipefail
model_tar=$1 limit=$2
shift 2
root=/tmp/ql
mkdir -p $root/bin $root/models
tar xJf .dev/bin/bin.tar.xz -C $root/bin
tar xJf .dev/bin/data.tar.xz -C $root
tar xJf "$model_tar" -C $root/models
export LD_LIBRARY_PATH=$root/bin QUANTLLM=$root/bin/quantllm
model=$(ls -d $root/models/*)
nproc; lscpu | grep -E "Model name|^CPU\(s\)" ; date -u
for spec in "$@"; do
  IFS=: read -r tag threads envs jobs <<<"$spec"
  ( export JOBTAG=$tag THREADS=$threads OPENBLAS_NUM_THREADS=$threads; for e in $envs; do export "${e//,/ }"; done
    timeout "$limit" bash bench/quality.sh "$model" $root/data "$OUT" $jobs >"$OUT/log-$tag.txt" 2>&1 ) &
done
wait
ls -la "$OUT"
