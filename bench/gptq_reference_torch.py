#!/usr/bin/env python3
"""The GPTQ authors' procedure, transcribed plainly into PyTorch, timed on the first decoder blocks
of a Llama-shaped Hugging Face checkpoint: the baseline bench/gpu_quantize.sh compares quantllm's
CUDA path against, in the same run on the same GPU.

What it does per block, as the reference implementation (IST-DASLab gptq, llama.py + gptq.py) does
it: the model in fp16; calibration inputs pushed through the block one sequence at a time; for each
true-sequential group (q/k/v, o, gate/up, down) forward hooks accumulate H = 2/n·Σ xxᵀ in fp32 with
the running rescaling of add_batch, the whole block runs over all sequences, then each layer of the
group is quantized by Algorithm 1 of Frantar et al. (2022) with lazy batches of 128 columns:
dead inputs, 1% damping, act-order, the upper Cholesky factor of H⁻¹, groups of 128 with asymmetric
min/max parameters found at each group's first column, error feedback; after the last group the
block runs once more to give the next block its inputs. Written here from the paper and the
reference's documented behaviour; the decoder block (RMSNorm, rotate-half RoPE, causal attention
through torch's scaled_dot_product_attention, SwiGLU) is a direct fp16 transcription of Llama's.

Prints one JSON object: seconds per block for the forward passes and for GPTQ, and their sum.
usage: gptq_reference_torch.py MODEL_DIR [--blocks 2] [--nsamples 128] [--seqlen 2048] [--bits 4]
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F
from safetensors import safe_open


def open_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    where = {}
    for f in files:
        with safe_open(os.path.join(model_dir, f), "pt") as h:
            for k in h.keys():
                where[k] = os.path.join(model_dir, f)
    return lambda name: safe_open(where[name], "pt").get_tensor(name)


def rms_norm(x, w, eps):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block:
    names = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
             "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}

    def __init__(self, get, cfg, i, dev):
        p = f"model.layers.{i}."
        self.w = {k: get(p + n + ".weight").to(dev, torch.float16) for k, n in self.names.items()}
        self.n1 = get(p + "input_layernorm.weight").to(dev, torch.float16)
        self.n2 = get(p + "post_attention_layernorm.weight").to(dev, torch.float16)
        self.cfg = cfg
        self.hooks = {}

    def lin(self, key, x):
        if key in self.hooks:
            self.hooks[key](x)
        return x @ self.w[key].t()

    def forward(self, x, cos, sin):  # x: [1, T, hidden] fp16
        c = self.cfg
        nh, nkv, hd = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"]), c["hidden_size"] // c["num_attention_heads"]
        T = x.shape[1]
        h = rms_norm(x, self.n1, c["rms_norm_eps"])
        q = self.lin("q", h).view(1, T, nh, hd).transpose(1, 2)
        k = self.lin("k", h).view(1, T, nkv, hd).transpose(1, 2)
        v = self.lin("v", h).view(1, T, nkv, hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if nkv != nh:
            k, v = k.repeat_interleave(nh // nkv, 1), v.repeat_interleave(nh // nkv, 1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(1, T, nh * hd)
        x = x + self.lin("o", a)
        h = rms_norm(x, self.n2, c["rms_norm_eps"])
        return x + self.lin("down", F.silu(self.lin("gate", h)) * self.lin("up", h))


class Hessian:  # gptq.py add_batch: a running mean of 2·xxᵀ over samples, in fp32
    def __init__(self, cols, dev):
        self.H = torch.zeros(cols, cols, device=dev)
        self.n = 0

    def add(self, x):
        x = x.reshape(-1, x.shape[-1]).t().float()
        tmp = 1
        self.H *= self.n / (self.n + tmp)
        self.n += tmp
        x = math.sqrt(2 / self.n) * x
        self.H += x.matmul(x.t())


def quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def find_params(w, maxq):  # per row, asymmetric min/max including 0
    xmin = torch.minimum(w.min(1).values, torch.zeros(1, device=w.device))
    xmax = torch.maximum(w.max(1).values, torch.zeros(1, device=w.device))
    both0 = (xmin == 0) & (xmax == 0)
    xmin[both0], xmax[both0] = -1, 1
    scale = (xmax - xmin) / maxq
    zero = torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)


def gptq(W, H, bits=4, groupsize=128, blocksize=128, percdamp=0.01, actorder=True):
    W = W.float().clone()
    maxq = 2 ** bits - 1
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    if actorder:
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
        invperm = torch.argsort(perm)
    Q = torch.zeros_like(W)
    damp = percdamp * torch.mean(torch.diag(H))
    H[range(W.shape[1]), range(W.shape[1])] += damp
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    cols = W.shape[1]
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1, Q1, Err1, Hinv1 = W[:, i1:i2].clone(), torch.zeros_like(W[:, i1:i2]), torch.zeros_like(W[:, i1:i2]), Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w, d = W1[:, i], Hinv1[i, i]
            if (i1 + i) % groupsize == 0:
                scale, zero = find_params(W[:, i1 + i:i1 + i + groupsize], maxq)
            q = quantize(w.unsqueeze(1), scale, zero, maxq).flatten()
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    if actorder:
        Q = Q[:, invperm]
    return Q


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--bits", type=int, default=4)
    a = ap.parse_args()
    dev = "cuda"
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    get = open_weights(a.model)
    torch.manual_seed(0)
    vocab, hid = cfg["vocab_size"], cfg["hidden_size"]
    emb = get("model.embed_tokens.weight").to(dev, torch.float16)
    ids = torch.randint(0, vocab, (a.nsamples, a.seqlen), device=dev)
    inps = emb[ids]  # [nsamples, T, hidden] fp16
    outs = torch.empty_like(inps)
    hd = hid // cfg["num_attention_heads"]
    theta = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, device=dev).float() / hd)
    ang = torch.outer(torch.arange(a.seqlen, device=dev).float(), inv)
    cos = torch.cat((ang, ang), -1).cos().half()[None, None]
    sin = torch.cat((ang, ang), -1).sin().half()[None, None]
    groups = [["q", "k", "v"], ["o"], ["gate", "up"], ["down"]]
    fwd, quant = [], []
    for b in range(a.blocks):
        blk = Block(get, cfg, b, dev)
        torch.cuda.synchronize()
        tf = tq = 0.0
        for g in groups:
            hs = {k: Hessian(blk.w[k].shape[1], dev) for k in g}
            blk.hooks = {k: hs[k].add for k in g}
            t0 = time.time()
            with torch.no_grad():
                for j in range(a.nsamples):
                    blk.forward(inps[j:j + 1], cos, sin)
            torch.cuda.synchronize()
            t1 = time.time()
            for k in g:
                blk.w[k] = gptq(blk.w[k], hs[k].H, bits=a.bits).to(torch.float16)
            torch.cuda.synchronize()
            tf += t1 - t0
            tq += time.time() - t1
            blk.hooks = {}
        t0 = time.time()
        with torch.no_grad():
            for j in range(a.nsamples):
                outs[j:j + 1] = blk.forward(inps[j:j + 1], cos, sin)
        torch.cuda.synchronize()
        tf += time.time() - t0
        inps, outs = outs, inps
        fwd.append(tf)
        quant.append(tq)
        print(f"reference block {b}: forward {tf:.2f}s, gptq {tq:.2f}s", flush=True)
    fb, qb = sum(fwd[1:] or fwd) / len(fwd[1:] or fwd), sum(quant[1:] or quant) / len(quant[1:] or quant)
    print(json.dumps({"impl": "pytorch-reference", "blocks_timed": a.blocks, "forward_s_per_block": fb,
                      "gptq_s_per_block": qb, "s_per_block": fb + qb,
                      "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2 ** 30,
                      "device": torch.cuda.get_device_name()}))


if __name__ == "__main__":
    main()
