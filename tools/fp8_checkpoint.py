#!/usr/bin/env python3
"""Makes an FP8 checkpoint in the Hub's block-scaled layout (DeepSeek-V3 / Qwen3-FP8 style) from a Hugging Face
directory: every linear weight of the decoder blocks (the 2-D "*_proj.weight" / "fc*.weight" / expert
tensors under model.layers / model.decoder.layers, except MoE routers) becomes float8 e4m3fn with one
float32 scale per 128 x 128 block ("<name>_scale_inv", the factor that multiplies the stored values back),
config.json gets quantization_config {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
"weight_block_size": [128, 128]}; embeddings, norms and lm_head stay as they are. For tests and benchmarks of
FP8 sources (quantllm reads these as the input of every method); needs NumPy only.

Encoding: scale = max |w| over the block / 448 (1 for an all-zero block); code = the e4m3fn value nearest to
w / scale, ties to the even code, saturated at +-448.

usage: tools/fp8_checkpoint.py HF_DIR OUT_DIR [--block 128]
"""
import json
import os
import re
import shutil
import struct
import sys

import numpy as np

E4M3_MAX = 448.0


def e4m3_table():
    """The 127 finite non-negative e4m3fn values, by code (0x00 ... 0x7e)."""
    v = []
    for c in range(127):
        e, m = c >> 3, c & 7
        v.append(m / 8 * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))
    return np.array(v, dtype=np.float64)


def encode_e4m3(x):
    table = e4m3_table()
    a = np.minimum(np.abs(x.astype(np.float64)), E4M3_MAX)
    hi = np.clip(np.searchsorted(table, a), 1, 126)
    lo = hi - 1
    dl, dh = a - table[lo], table[hi] - a
    code = np.where(dl < dh, lo, np.where(dh < dl, hi, np.where(lo % 2 == 0, lo, hi)))
    code = np.where(a == 0, 0, code)
    return (code | np.where(np.signbit(x), 0x80, 0)).astype(np.uint8)


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    return {k: (t["dtype"], t["shape"], data[t["data_offsets"][0]:t["data_offsets"][1]])
            for k, t in header.items() if k != "__metadata__"}


def to_f32(dtype, shape, raw):
    if dtype == "BF16":
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return np.frombuffer(raw, {"F32": "<f4", "F16": "<f2"}[dtype]).astype(np.float32).reshape(shape)


def write_safetensors(path, entries):
    header, off = {}, 0
    for n in sorted(entries):
        dtype, shape, raw = entries[n]
        header[n] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for n in sorted(entries):
            f.write(entries[n][2])


LINEAR = re.compile(r"^model\.(decoder\.)?layers\.\d+\..*(proj|fc1|fc2|w1|w2|w3)\.weight$")


def main(src, dst, block=128):
    index = os.path.join(src, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    tensors = {}
    for f in files:
        tensors.update(read_safetensors(os.path.join(src, f)))
    out = {}
    n_fp8 = 0
    for name, (dtype, shape, raw) in tensors.items():
        if not (LINEAR.match(name) and len(shape) == 2 and dtype in ("BF16", "F16", "F32")):
            out[name] = (dtype, shape, raw)
            continue
        w = to_f32(dtype, shape, raw)
        rows, cols = shape
        br, bc = -(-rows // block), -(-cols // block)
        scale = np.ones((br, bc), np.float32)
        codes = np.zeros(shape, np.uint8)
        for i in range(br):
            for j in range(bc):
                blk = w[i * block:(i + 1) * block, j * block:(j + 1) * block]
                amax = float(np.max(np.abs(blk)))
                s = np.float32(amax / E4M3_MAX) if amax > 0 else np.float32(1.0)
                scale[i, j] = s
                codes[i * block:(i + 1) * block, j * block:(j + 1) * block] = encode_e4m3(blk / s)
        out[name] = ("F8_E4M3", shape, codes.tobytes())
        out[name[: -len(".weight")] + ".weight_scale_inv"] = ("F32", (br, bc), scale.astype("<f4").tobytes())
        n_fp8 += 1
    os.makedirs(dst, exist_ok=True)
    write_safetensors(os.path.join(dst, "model.safetensors"), out)
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                  "weight_block_size": [block, block]}
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
    for f in os.listdir(src):
        if not f.endswith(".safetensors") and f not in ("config.json", "model.safetensors.index.json", "reference.json"):
            p = os.path.join(src, f)
            if os.path.isfile(p):
                shutil.copy(p, os.path.join(dst, f))
    print(f"fp8_checkpoint: {n_fp8} weights in float8 e4m3fn with {block}x{block} block scales -> {dst}")


if __name__ == "__main__":
    args = sys.argv[1:]
    blk = 128
    if "--block" in args:
        i = args.index("--block")
        blk = int(args[i + 1])
        del args[i:i + 2]
    main(args[0], args[1], blk)
