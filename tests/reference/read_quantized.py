#!/usr/bin/env python3
"""A second reader of the quantized checkpoint formats quantllm writes, kept apart from the production
reader (src/formats, src/quant) and written from the formats' descriptions alone:

  gptq / gptq_v2   AutoGPTQ / GPTQModel: qweight int32 [in*bits/32, out], each output column's codes a
                   little-endian bit stream along the input rows; qzeros int32 [groups, out*bits/32], the
                   same stream along the outputs, stored minus one (mod 2^bits) in "gptq", true in
                   "gptq_v2"; scales fp16 [groups, out]; g_idx int32 [in].
  awq (gemm)       AutoAWQ WQLinear_GEMM: qweight int32 [in, out/8], nibble j of word (i, k) holds output
                   8k + (0, 2, 4, 6, 1, 3, 5, 7)[j]; qzeros int32 [in/group, out/8] alike; scales fp16.
  compressed-tensors, pack-quantized: weight_packed int32 [out, ceil(in/pf)], pf = 32 // bits codes a
                   word along the input, low bits first, each the signed code + 2^(bits-1);
                   weight_zero_point int32 [ceil(out/pf), groups] packed along the outputs (asymmetric
                   only; symmetric means a signed zero of 0); weight_scale [out, groups];
                   weight_g_idx int32 [in] (optional); weight_shape [2].
  compressed-tensors, float-quantized, and the Hub's "fp8": weight F8_E4M3 (e4m3fn: 1 sign, 4 exponent bits
                   of bias 7, 3 mantissa bits, exponent 0 subnormal, S.1111.111 NaN) times its scale —
                   weight_scale per tensor [1], per channel [out, 1] or per block, or weight_scale_inv per
                   block of weight_block_size.

Every layer is dequantized as scale * (code - zero) in float32, the other tensors are copied as stored,
and the result is written as a plain Hugging Face directory (config.json without quantization_config,
one model.safetensors, the tokenizer files), which the tests compare with quantllm's own reading.

usage: read_quantized.py QUANTIZED_DIR DENSE_OUT_DIR
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "I8": np.int8,
          "U8": np.uint8, "I16": np.int16, "F64": np.float64}


def read_safetensors(path):
    """name -> (dtype string, shape, raw bytes)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = (t["dtype"], tuple(t["shape"]), data[a:b])
    return out


def as_array(entry):
    dtype, shape, raw = entry
    if dtype == "BF16":  # the high half of a float32
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<")).reshape(shape)


def read_dir(d):
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    tensors = {}
    for f in files:
        tensors.update(read_safetensors(os.path.join(d, f)))
    return tensors


def stream_fields(words, bits, count):
    """words: uint32 [n_words, m], each column one little-endian bit stream; returns [count, m] fields."""
    w = np.concatenate([words, np.zeros((1, words.shape[1]), np.uint32)]).astype(np.uint64)
    start = np.arange(count) * bits
    lo, off = start // 32, (start % 32).astype(np.uint64)
    both = w[lo] | (w[lo + 1] << np.uint64(32))  # two adjacent words: fields that cross a boundary
    return ((both >> off[:, None]) & np.uint64((1 << bits) - 1)).astype(np.int64)


def gptq_layer(t, b, bits, group_size, v1):
    qweight = as_array(t[b + ".qweight"]).view(np.uint32)
    out = qweight.shape[1]
    inn = qweight.shape[0] * 32 // bits
    codes = stream_fields(qweight, bits, inn)                          # [in, out]
    qzeros = as_array(t[b + ".qzeros"]).view(np.uint32)                 # [groups, out*bits/32]
    zeros = stream_fields(qzeros.T.copy(), bits, out).T               # [groups, out]
    if v1:
        zeros = (zeros + 1) % (1 << bits)
    scales = as_array(t[b + ".scales"]).astype(np.float32)            # [groups, out]
    gs = group_size if group_size > 0 else inn
    g_idx = as_array(t[b + ".g_idx"]).astype(np.int64) if b + ".g_idx" in t else np.arange(inn) // gs
    w = scales[g_idx, :] * (codes - zeros[g_idx, :]).astype(np.float32)  # [in, out]
    return w.T


def awq_layer(t, b, group_size):
    order = [0, 2, 4, 6, 1, 3, 5, 7]

    def unpack(words):  # [rows, out/8] -> [rows, out]
        u = words.view(np.uint32)
        res = np.zeros((u.shape[0], u.shape[1] * 8), np.int64)
        for j in range(8):
            res[:, order[j]::8] = (u >> np.uint32(4 * j)) & np.uint32(15)
        return res

    codes = unpack(as_array(t[b + ".qweight"]))   # [in, out]
    zeros = unpack(as_array(t[b + ".qzeros"]))    # [groups, out]
    scales = as_array(t[b + ".scales"]).astype(np.float32)
    g = np.arange(codes.shape[0]) // group_size
    return (scales[g, :] * (codes - zeros[g, :]).astype(np.float32)).T


def ct_layer(t, b, scheme):
    bits = scheme["num_bits"]
    pf = 32 // bits
    out, inn = (int(x) for x in as_array(t[b + ".weight_shape"]))
    mask = np.uint32((1 << bits) - 1)
    packed = as_array(t[b + ".weight_packed"]).view(np.uint32)            # [out, ceil(in/pf)]
    codes = np.zeros((out, packed.shape[1] * pf), np.int64)
    for i in range(pf):
        codes[:, i::pf] = (packed >> np.uint32(bits * i)) & mask
    codes = codes[:, :inn] - (1 << (bits - 1))                            # signed codes
    scales = as_array(t[b + ".weight_scale"]).astype(np.float32)          # [out, groups]
    if scheme.get("symmetric", True):
        zeros = np.zeros(scales.shape, np.int64)
    else:
        zp = as_array(t[b + ".weight_zero_point"]).view(np.uint32)        # [ceil(out/pf), groups]
        zeros = np.zeros((zp.shape[0] * pf, zp.shape[1]), np.int64)
        for i in range(pf):
            zeros[i::pf, :] = (zp >> np.uint32(bits * i)) & mask
        zeros = zeros[:out, :] - (1 << (bits - 1))
    gs = scheme["group_size"] if scheme.get("strategy", "group") == "group" else inn
    g = as_array(t[b + ".weight_g_idx"]).astype(np.int64) if b + ".weight_g_idx" in t else np.arange(inn) // gs
    return scales[:, g] * (codes - zeros[:, g]).astype(np.float32)


def e4m3_decode(codes):
    c = codes.astype(np.int64)
    e, m = (c >> 3) & 15, c & 7
    mag = np.where(e == 0, m / 8 * 2.0 ** -6, (1 + m / 8) * np.exp2(e - 7.0))
    mag = np.where((e == 15) & (m == 7), np.nan, mag)
    return np.where(c & 0x80, -mag, mag).astype(np.float32)


def fp8_layer(t, name, scale_name, block):
    dtype, shape, raw = t[name]
    w = e4m3_decode(np.frombuffer(raw, np.uint8).reshape(shape))
    s = as_array(t[scale_name]).astype(np.float32)
    if s.size == 1:
        return w * s.reshape(())
    if block:
        rows = np.arange(shape[0]) // block[0]
        cols = np.arange(shape[1]) // block[1]
        return w * s[rows[:, None], cols[None, :]]
    return w * s.reshape(shape[0], 1)


def main(src, dst):
    cfg = json.load(open(os.path.join(src, "config.json")))
    qc = cfg.pop("quantization_config")
    t = read_dir(src)
    method = qc["quant_method"]
    dense = {}
    if method == "gptq":
        v1 = qc.get("checkpoint_format", "gptq") == "gptq"
        parts = (".qweight", ".qzeros", ".scales", ".g_idx")
        layers = [n[: -len(".qweight")] for n in t if n.endswith(".qweight")]
        for b in layers:
            dense[b + ".weight"] = gptq_layer(t, b, qc["bits"], qc["group_size"], v1)
    elif method == "awq":
        parts = (".qweight", ".qzeros", ".scales")
        layers = [n[: -len(".qweight")] for n in t if n.endswith(".qweight")]
        for b in layers:
            dense[b + ".weight"] = awq_layer(t, b, qc["group_size"])
    elif method == "fp8" or (method == "compressed-tensors" and qc["format"] == "float-quantized"):
        if method == "fp8":
            block = qc.get("weight_block_size")
            scale_part = ".weight_scale_inv" if block else ".weight_scale"
        else:
            w = list(qc["config_groups"].values())[0]["weights"]
            block = w.get("block_structure") if w.get("strategy") == "block" else None
            scale_part = ".weight_scale"
        layers = [n[: -len(".weight")] for n, e in t.items() if n.endswith(".weight") and e[0] == "F8_E4M3"]
        parts = (".weight", scale_part, ".input_scale")
        for b in layers:
            dense[b + ".weight"] = fp8_layer(t, b + ".weight", b + scale_part, block)
    elif method == "compressed-tensors":
        assert qc["format"] == "pack-quantized", qc["format"]
        groups = list(qc["config_groups"].values())
        assert len(groups) == 1 and groups[0]["targets"] == ["Linear"], "one Linear group expected"
        scheme = groups[0]["weights"]
        parts = (".weight_packed", ".weight_scale", ".weight_zero_point", ".weight_g_idx", ".weight_shape")
        layers = [n[: -len(".weight_packed")] for n in t if n.endswith(".weight_packed")]
        for b in layers:
            dense[b + ".weight"] = ct_layer(t, b, scheme)
    else:
        sys.exit(f"read_quantized: quant_method {method} is not known here")
    skip = {b + p for b in layers for p in parts}
    os.makedirs(dst, exist_ok=True)
    entries = {}
    for n, e in t.items():
        if n not in skip:
            entries[n] = e
    for n, w in dense.items():
        w = np.ascontiguousarray(w, dtype="<f4")
        entries[n] = ("F32", w.shape, w.tobytes())
    header, blobs, off = {}, [], 0
    for n in sorted(entries):
        dtype, shape, raw = entries[n]
        header[n] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for raw in blobs:
            f.write(raw)
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
    for f in os.listdir(src):
        if f.startswith("tokenizer") or f in ("vocab.json", "merges.txt", "special_tokens_map.json",
                                               "generation_config.json", "added_tokens.json"):
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))
    print(f"read_quantized: {method}: {len(layers)} layers dequantized, {len(entries)} tensors written")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
