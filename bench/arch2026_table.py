#!/usr/bin/env python3
"""The quality table of bench/arch2026_quality.sh: one row per method, perplexity over all windows of
gutenberg-heldout and wikitext-2 and KL divergence (first 64 windows) from the bf16 model.
usage: bench/arch2026_table.py QUALITY_JSONL [...]"""
import json
import sys

rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        rows.setdefault((r["model"], r["config"]), {})[r["what"]] = r["result"]
print("| model | method | heldout ppl (all) | wikitext2 ppl (all) | KLD heldout (64) | KLD wikitext2 (64) | top-1 heldout |")
print("|---|---|---|---|---|---|---|")
for (model, config), v in rows.items():
    def get(what, key, fmt):
        x = v.get(what)
        return fmt % x[key] if x and key in x else ""
    print(f"| {model} | {config} | {get('ppl_all gutenberg-heldout.txt', 'ppl', '%.3f')} | "
          f"{get('ppl_all wikitext2-test.raw', 'ppl', '%.2f')} | {get('kld64 gutenberg-heldout.txt', 'kld', '%.5f')} | "
          f"{get('kld64 wikitext2-test.raw', 'kld', '%.5f')} | {get('kld64 gutenberg-heldout.txt', 'top1_agreement', '%.4f')} |")
