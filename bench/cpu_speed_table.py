#!/usr/bin/env python3
"""Renders bench/cpu_speed.sh's results.jsonl as the Markdown table of docs/benchmarks-cpu.md:
per model and format, the median tokens/s over the repetitions of quantllm and of llama.cpp for
prompt processing (pp512) and generation (tg128), and their ratio."""
import json
import statistics
import sys
from collections import defaultdict


def main(path):
    cells = defaultdict(lambda: defaultdict(list))  # (model, format) -> key -> values
    sizes, rss, loads = {}, {}, []
    for line in open(path):
        r = json.loads(line)
        key = (r["model"], r["format"])
        loads.append(r["load"])
        res = r["result"]
        if r["engine"] == "quantllm":
            cells[key]["q_pp"] += res["pp"]
            cells[key]["q_tg"] += res["tg"]
            sizes[key] = res["file_mib"]
            rss[key] = max(rss.get(key, 0), res["rss_mib"])
        else:
            for t in res:
                (cells[key]["l_pp"] if t["n_prompt"] > 0 else cells[key]["l_tg"]).append(t["avg_ts"])
    med = lambda v: statistics.median(v) if v else None
    fmt = lambda v: f"{v:.1f}" if v is not None else "—"
    ratio = lambda a, b: f"{a / b:.2f}×" if a and b else "—"
    print("| model | format | file MiB | RSS MiB | pp512 quantllm | pp512 llama.cpp | ratio | tg128 quantllm | tg128 llama.cpp | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (model, form), c in cells.items():
        qp, lp, qt, lt = med(c["q_pp"]), med(c["l_pp"]), med(c["q_tg"]), med(c["l_tg"])
        print(f"| {model} | {form} | {sizes[(model, form)]:.0f} | {rss[(model, form)]:.0f} | {fmt(qp)} | {fmt(lp)} | "
              f"{ratio(qp, lp)} | {fmt(qt)} | {fmt(lt)} | {ratio(qt, lt)} |")
    for model in sorted({m for m, _ in cells}):  # GPTQ has no llama.cpp reader: next to its 4-bit peers
        g = cells.get((model, "GPTQ"))
        for peer in ("Q4_0", "Q4_0_BF16"):
            c = cells.get((model, peer))
            if g and c and c["l_pp"]:
                print(f"\nGPTQ ({model}) next to llama.cpp's {peer}: pp512 {fmt(med(g['q_pp']))} vs {fmt(med(c['l_pp']))} "
                      f"({ratio(med(g['q_pp']), med(c['l_pp']))}), tg128 {fmt(med(g['q_tg']))} vs {fmt(med(c['l_tg']))} "
                      f"({ratio(med(g['q_tg']), med(c['l_tg']))})")
    if loads:
        print(f"\nCPU used by other processes just before each measurement: {min(loads)}–{max(loads)}% "
              f"(median {statistics.median(loads)}%)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/cpu-speed/results.jsonl")
