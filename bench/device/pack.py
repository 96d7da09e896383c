#!/usr/bin/env python3
"""Packs what a run on the GPU machine needs into .devcarry/ (ignored by git, named in the device
tool's `carry`): the CUDA build of quantllm, test_cuda and test_methods, the shared libraries they
need beyond the CUDA ones (and glibc, in case the machine's is older), the data texts, both reference models'
configs and tokenizers, and the weights of the models named on the command line.

The device tool carries at most 64 MiB, and one reference model is about that size, so safetensors
data is split into byte planes: the high bytes of bf16/fp16 values (sign, exponent) compress to a
third, the low bytes are stored as they are. bench/device/unpack.py rebuilds the files bit for bit.

usage: bench/device/pack.py BUILD_DIR [MODEL ...] [--base BIN] [--lean]   (MODEL: a folder of ../shared/models)
  --base BIN  also carries BIN (the CUDA quantllm of an earlier commit) as bin/quantllm-base, for
              before/after timings on one GPU (bench/gpu_quantize.sh with BASE_BIN)
  --lean      only quantllm, without the test binaries and the spare glibc (room for the largest model)
"""
import glob
import lzma
import os
import shutil
import struct
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
shared = os.path.join(os.path.dirname(root), "shared")
out = os.path.join(root, ".devcarry")
args = sys.argv[1:]
base = None
if "--base" in args:
    i = args.index("--base")
    base = args[i + 1]
    del args[i : i + 2]
lean = "--lean" in args
if lean:
    args.remove("--lean")
build = args[0]
models = args[1:]

shutil.rmtree(out, ignore_errors=True)
for d in ("bin", "lib/glibc", "share/data", "share/models"):
    os.makedirs(os.path.join(out, d))


def xz(src, dst):
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(lzma.compress(f.read(), preset=6))


exes = [(os.path.join(build, "quantllm"), "quantllm")]
if not lean:
    exes += [(os.path.join(build, "tests/test_cuda"), "test_cuda"), (os.path.join(build, "tests/test_methods"), "test_methods")]
if base:
    exes.append((base, "quantllm-base"))
for src, name in exes:
    dst = os.path.join(out, "bin", name)
    shutil.copy(src, dst)
    subprocess.run(["strip", dst], check=True)
    xz(dst, dst + ".xz")
    os.remove(dst)

# Libraries the binaries load besides CUDA's and the kernel driver's (found through ldd here).
skip = ("libcuda", "libcublas", "libcusolver", "libcusparse", "libnvJitLink", "linux-vdso")
libs = set()
for exe in ("quantllm",) if lean else ("quantllm", "tests/test_cuda", "tests/test_methods"):
    for line in subprocess.run(["ldd", os.path.join(build, exe)], capture_output=True, text=True).stdout.splitlines():
        parts = line.split()
        if "=>" in parts and not any(parts[0].startswith(s) for s in skip):
            libs.add(os.path.realpath(parts[parts.index("=>") + 1]) + " " + parts[0])
        elif parts and parts[0].startswith("/") and "ld-linux" in parts[0]:
            libs.add(os.path.realpath(parts[0]) + " ld-linux-x86-64.so.2")
# glibc and the C++ runtime go apart: used only when the machine's own are too old (run.sh decides).
system = ("libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "ld-linux", "libstdc++.so", "libgcc_s.so")
for entry in sorted(libs):
    path, soname = entry.split(" ")
    sub = "lib/glibc" if soname.startswith(system) else "lib"
    if lean and sub == "lib/glibc":
        continue
    xz(path, os.path.join(out, sub, soname + ".xz"))

for f in glob.glob(os.path.join(shared, "data", "*")):
    xz(f, os.path.join(out, "share/data", os.path.basename(f) + ".xz"))

for m in sorted(os.listdir(os.path.join(shared, "models"))):
    if not os.path.isdir(os.path.join(shared, "models", m)):
        continue
    src, dst = os.path.join(shared, "models", m), os.path.join(out, "share/models", m)
    os.makedirs(dst)
    for f in sorted(os.listdir(src)):
        p = os.path.join(src, f)
        if not f.endswith(".safetensors"):
            xz(p, os.path.join(dst, f + ".xz"))
        elif m in models:
            b = open(p, "rb").read()
            n = struct.unpack("<Q", b[:8])[0]
            head, data = b[: 8 + n], b[8 + n :]
            assert len(data) % 2 == 0
            with open(os.path.join(dst, f + ".planes"), "wb") as g:
                hi = lzma.compress(data[1::2], preset=6)
                g.write(struct.pack("<QQQ", len(head), len(data) // 2, len(hi)))
                g.write(head)
                g.write(hi)
                g.write(data[0::2])

total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
print(f"pack: {out}: {total / 2**20:.1f} MiB for models {models or 'none'}")
