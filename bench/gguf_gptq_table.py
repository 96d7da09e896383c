#!/usr/bin/env python3
"""Markdown table of bench/gguf_gptq.sh results: per model and mix, the file size and the KL divergence of
llama.cpp's imatrix quant and of gguf --gptq on wikitext2 and gutenberg-heldout, and how much lower GPTQ's is.
usage: bench/gguf_gptq_table.py RESULTS.jsonl [...]"""
import json
import sys

rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        j = json.loads(line)
        if "type" not in j:
            continue
        key = (j["model"], j["type"])
        r = rows.setdefault(key, {})
        r[(j["variant"], j["text"])] = j["kld"]["kld"]
        r[(j["variant"], "bytes")] = j["bytes"]
        r[(j["variant"], "seconds")] = j["quantize_seconds"]

print("| model | mix | file (imatrix / gptq) | KLD wikitext2: imatrix → gptq | KLD heldout: imatrix → gptq | quantize s (imatrix / gptq) |")
print("|---|---|---|---|---|---|")
for (model, mix), r in rows.items():
    if ("gptq", "bytes") not in r or ("imatrix", "bytes") not in r:
        continue
    cells = []
    for text in ("wikitext2-test.raw", "gutenberg-heldout.txt"):
        a, b = r.get(("imatrix", text)), r.get(("gptq", text))
        cells.append(f"{a:.5f} → **{b:.5f}** ({100 * (1 - b / a):.0f}% lower)" if a and b else "—")
    print(f"| {model} | {mix} | {r[('imatrix', 'bytes')] / 2**20:.2f} / {r[('gptq', 'bytes')] / 2**20:.2f} MiB | "
          f"{cells[0]} | {cells[1]} | {r[('imatrix', 'seconds')]:.1f} / {r[('gptq', 'seconds')]:.0f} |")
