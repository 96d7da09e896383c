#!/usr/bin/env python3
"""Unpacks .devcarry/ (made by bench/device/pack.py) on the GPU machine into DEST: bin/, lib/,
share/data, share/models with the safetensors files rebuilt from their byte planes."""
import lzma
import os
import struct
import sys

src, dest = sys.argv[1], sys.argv[2]
for d, _, files in os.walk(src):
    rel = os.path.relpath(d, src)
    os.makedirs(os.path.join(dest, rel), exist_ok=True)
    for f in files:
        p = os.path.join(d, f)
        if f.endswith(".xz"):
            target = os.path.join(dest, rel, f[:-3])
            with open(target, "wb") as g:
                g.write(lzma.decompress(open(p, "rb").read()))
            if rel == "bin" or f.startswith("ld-linux"):
                os.chmod(target, 0o755)
        elif f.endswith(".planes"):
            b = open(p, "rb").read()
            nh, n, nhi = struct.unpack("<QQQ", b[:24])
            head = b[24 : 24 + nh]
            hi = lzma.decompress(b[24 + nh : 24 + nh + nhi])
            lo = b[24 + nh + nhi :]
            assert len(hi) == n and len(lo) == n
            data = bytearray(2 * n)
            data[0::2], data[1::2] = lo, hi
            with open(os.path.join(dest, rel, f[: -len(".planes")]), "wb") as g:
                g.write(head)
                g.write(data)
print("unpack: done")
