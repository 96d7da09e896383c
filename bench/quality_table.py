#!/usr/bin/env python3
"""Markdown table of quality-*.jsonl lines written by bench/quality.sh (and runs that write the same
lines): per model and variant, bits per weight, file size, perplexity and KL divergence.
    bench/quality_table.py FILE.jsonl [...]"""
import json
import sys

rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        try:
            j = json.loads(line)
        except json.JSONDecodeError:
            continue  # an interrupted run's partial line
        key = (j["model"], j["variant"])
        r = rows.setdefault(key, {})
        if "quantize" in j:
            r["bpw"] = j["quantize"]["bits_per_weight"]
            r["bytes"] = j["quantize"]["bytes"]
            r["seconds"] = j["quantize"]["seconds"]
        elif "kld" in j:
            r["kld"] = j["kld"]["kld"]
            r["top1"] = j["kld"]["top1_agreement"]
            r["kld_windows"] = j["kld_windows"]
        elif "ppl" in j:
            r.setdefault("ppl", {})[j["text"]] = (j["ppl"]["ppl"], j["ppl"]["windows"])

for model in sorted({m for m, _ in rows}):
    print(f"\n{model}\n")
    print("| type | bits/weight | file size | perplexity wikitext2 (windows) | KL divergence (64 windows) | top-1 agreement |")
    print("|---|---:|---:|---:|---:|---:|")
    items = sorted(((v, r) for (m, v), r in rows.items() if m == model), key=lambda x: -x[1].get("bpw", 99))
    for v, r in items:
        ppl = r.get("ppl", {}).get("wikitext2-test.raw")
        ppl_s = f"{ppl[0]:.2f} ({ppl[1]})" if ppl else "—"
        size = f"{r['bytes'] / 2**20:.1f} MiB" if "bytes" in r else "—"
        bpw = f"{r['bpw']:.2f}" if "bpw" in r else "—"
        kld = f"{r['kld']:.5f}" if "kld" in r else "—"
        top1 = f"{100 * r['top1']:.1f}%" if "top1" in r else "—"
        name = v.removeprefix("gguf_").replace("_imatrix", " + imatrix")
        print(f"| {name} | {bpw} | {size} | {ppl_s} | {kld} | {top1} |")
