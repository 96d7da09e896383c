#!/usr/bin/env python3
"""Issue 17: the --target-bpw table from bench/target_bpw.sh's compare JSON files.

For each model, target and variant: our file's size and KL divergence on wikitext2 and heldout, next to the
best llama.cpp named mix of equal or larger size, and whether ours is at or below it on both texts. "Of equal
or larger size": the smallest mix with at least our bytes, and any other mix within 5% above that one (mixes
of about the same size, e.g. Q3_K_S and IQ3_S); the best of them on each text. (Every mix far larger — Q8_0
at the end — is of course better; the comparison is at the size.)
  bench/target_bpw_table.py OUT_DIR [MODEL ...]
"""
import json
import pathlib
import re
import sys


def rows(path):
    return {r["model"]: r for r in json.loads(path.read_text())["rows"]}


def main():
    out = pathlib.Path(sys.argv[1])
    models = sys.argv[2:] or sorted({re.sub(r"-(wikitext2-test|gutenberg-heldout)$", "", p.stem[len("target_bpw-"):])
                                     for p in out.glob("target_bpw-*.json")})
    print("| model | target | variant | bytes | KLD wikitext2 / heldout | best llama.cpp mix ≥ size | its bytes "
          "| its KLD wikitext2 / heldout | ours lower by | at or below |")
    print("|---|---:|---|---:|---:|---|---:|---:|---:|:-:|")
    for model in models:
        wiki = out / f"target_bpw-{model}-wikitext2-test.json"
        held = out / f"target_bpw-{model}-gutenberg-heldout.json"
        if not (wiki.exists() and held.exists()):
            continue
        w, h = rows(wiki), rows(held)
        mixes = {k: v for k, v in w.items() if k.startswith("llama.cpp-")}
        ours = sorted((k for k in w if k.startswith("quantllm-")), key=lambda k: (k.split("-")[2], float(k.split("-")[1])))
        for k in ours:
            _, target, variant = k.removesuffix(".gguf").split("-")
            b = w[k]["bytes"]
            larger = sorted((m for m in mixes if mixes[m]["bytes"] >= b), key=lambda m: mixes[m]["bytes"])
            bigger = [m for m in larger if mixes[m]["bytes"] <= 1.05 * mixes[larger[0]]["bytes"]] if larger else []
            if not bigger:
                print(f"| {model} | {target} | {variant} | {b} | {w[k]['kld']:.5f} / {h[k]['kld']:.5f} | (none larger) | | | | |")
                continue
            # the best mix on each text may differ; name the one best on wikitext2, compare each text's best
            best_w = min(bigger, key=lambda m: w[m]["kld"])
            best_h = min(bigger, key=lambda m: h[m]["kld"])
            dw = 1 - w[k]["kld"] / w[best_w]["kld"]
            dh = 1 - h[k]["kld"] / h[best_h]["kld"]
            ok = w[k]["kld"] <= w[best_w]["kld"] and h[k]["kld"] <= h[best_h]["kld"]
            label = best_w.removeprefix("llama.cpp-").removesuffix(".gguf")
            if best_h != best_w:
                label += " / " + best_h.removeprefix("llama.cpp-").removesuffix(".gguf")
            print(f"| {model} | {target} | {variant} | {b} | {w[k]['kld']:.5f} / {h[k]['kld']:.5f} | {label} "
                  f"| {w[best_w]['bytes']} | {w[best_w]['kld']:.5f} / {h[best_h]['kld']:.5f} "
                  f"| {100 * dw:.0f}% / {100 * dh:.0f}% | {'yes' if ok else 'no'} |")


if __name__ == "__main__":
    main()
