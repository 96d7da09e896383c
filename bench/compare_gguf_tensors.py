#!/usr/bin/env python3
"""Compares the tensors of two GGUF files byte for byte (names, ggml types, shapes, data), ignoring metadata:
`quantllm quantize --method gguf --type T` against llama.cpp's `llama-quantize` of our F32 file to T
(bench/llama_quantize_check.sh). A reader written from the GGUF specification alone (header, key/value
section skipped by type, tensor infos, alignment), apart from quantllm's. Exit status 1 on any difference.
usage: bench/compare_gguf_tensors.py A.gguf B.gguf"""
import struct
import sys

SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read(path):
    b = open(path, "rb").read()
    assert b[:4] == b"GGUF", path
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", b, 4)
    off = 24
    alignment = 32

    def string(o):
        (n,) = struct.unpack_from("<Q", b, o)
        return b[o + 8 : o + 8 + n].decode(), o + 8 + n

    def value(t, o):
        if t == 8:
            return string(o)
        if t == 9:
            (et, n) = struct.unpack_from("<IQ", b, o)
            o += 12
            vals = []
            for _ in range(n):
                v, o = value(et, o)
                vals.append(v)
            return vals, o
        fmt = "<" + SCALARS[t]
        return struct.unpack_from(fmt, b, o)[0], o + struct.calcsize(fmt)

    for _ in range(n_kv):
        key, off = string(off)
        (t,) = struct.unpack_from("<I", b, off)
        v, off = value(t, off + 4)
        if key == "general.alignment":
            alignment = v
    infos = []
    for _ in range(n_tensors):
        name, off = string(off)
        (nd,) = struct.unpack_from("<I", b, off)
        ne = struct.unpack_from("<%dQ" % nd, b, off + 4)
        ggml_type, offset = struct.unpack_from("<IQ", b, off + 4 + 8 * nd)
        off += 4 + 8 * nd + 12
        infos.append((name, ne, ggml_type, offset))
    data0 = (off + alignment - 1) // alignment * alignment
    starts = sorted(o for _, _, _, o in infos) + [len(b) - data0]
    out = {}
    for name, ne, t, o in infos:
        end = min(s for s in starts if s > o) if any(s > o for s in starts) else len(b) - data0
        out[name] = (ne, t, b[data0 + o : data0 + end])
    return out


a, b = read(sys.argv[1]), read(sys.argv[2])
bad = 0
for name in sorted(set(a) | set(b)):
    if name not in a or name not in b:
        print("only in one file:", name)
        bad += 1
        continue
    (ne1, t1, d1), (ne2, t2, d2) = a[name], b[name]
    # the data regions may carry different alignment padding at the end: compare the shorter length
    n = min(len(d1), len(d2))
    if ne1 != ne2 or t1 != t2 or d1[:n] != d2[:n]:
        print("differs:", name, "type", t1, t2, "shape", ne1, ne2)
        bad += 1
print(f"{len(a)} tensors compared, {bad} differ")
sys.exit(1 if bad else 0)
