#!/usr/bin/env python3
"""Renders bench/cpu_speed.sh's results.jsonl as the Markdown table of docs/benchmarks-cpu.md:
per model and format, the median tokens/s over the repetitions of quantllm and of llama.cpp for
prompt processing (pp512) and generation (tg128), and the ratio quantllm / llama.cpp as the median
over the repetitions of each repetition's ratio (the two engines of one repetition run back to back,
so the pairing cancels the machine's drift between repetitions, which reaches ±30% on a shared VM).
Rows of engine "quantllm-base" (cpu_speed.sh with BASE_BENCH: the engine of an earlier commit) add a
before/after table: ours / it, paired the same way."""
import json
import statistics
import sys
from collections import defaultdict


def main(path):
    cells = defaultdict(lambda: defaultdict(list))  # (model, format) -> key -> values
    by_rep = defaultdict(lambda: defaultdict(dict))  # (model, format) -> rep -> key -> value
    sizes, rss, loads = {}, {}, []
    for line in open(path):
        r = json.loads(line)
        key = (r["model"], r["format"])
        loads.append(r["load"])
        res = r["result"]
        rep = r["rep"]
        if r["engine"] == "quantllm-base":
            cells[key]["b_pp"] += res["pp"]
            cells[key]["b_tg"] += res["tg"]
            by_rep[key][rep]["b_pp"], by_rep[key][rep]["b_tg"] = res["pp"][0], res["tg"][0]
        elif r["engine"] == "quantllm":
            cells[key]["q_pp"] += res["pp"]
            cells[key]["q_tg"] += res["tg"]
            by_rep[key][rep]["q_pp"], by_rep[key][rep]["q_tg"] = res["pp"][0], res["tg"][0]
            sizes[key] = res["file_mib"]
            rss[key] = max(rss.get(key, 0), res["rss_mib"])
        else:
            for t in res:
                which = "l_pp" if t["n_prompt"] > 0 else "l_tg"
                cells[key][which].append(t["avg_ts"])
                by_rep[key][rep][which] = t["avg_ts"]
    med = lambda v: statistics.median(v) if v else None
    fmt = lambda v: f"{v:.1f}" if v is not None else "—"

    def paired(key_a, key_b, model_a, model_b=None):
        """median over repetitions of a's value / b's value (b: another cell's llama.cpp run of that rep)"""
        ra, rb = by_rep[model_a], by_rep[model_b or model_a]
        v = [ra[k][key_a] / rb[k][key_b] for k in ra if key_a in ra[k] and k in rb and key_b in rb[k]]
        return f"{statistics.median(v):.2f}×" if v else "—"

    print("| model | format | file MiB | RSS MiB | pp512 quantllm | pp512 llama.cpp | ratio | tg128 quantllm | tg128 llama.cpp | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (model, form), c in cells.items():
        qp, lp, qt, lt = med(c["q_pp"]), med(c["l_pp"]), med(c["q_tg"]), med(c["l_tg"])
        print(f"| {model} | {form} | {sizes[(model, form)]:.0f} | {rss[(model, form)]:.0f} | {fmt(qp)} | {fmt(lp)} | "
              f"{paired('q_pp', 'l_pp', (model, form))} | {fmt(qt)} | {fmt(lt)} | {paired('q_tg', 'l_tg', (model, form))} |")
    for model in sorted({m for m, _ in cells}):  # GPTQ has no llama.cpp reader: next to its 4-bit peers
        g = cells.get((model, "GPTQ"))
        for peer in ("Q4_0", "Q4_0_BF16"):
            c = cells.get((model, peer))
            if g and c and c["l_pp"]:
                print(f"\nGPTQ ({model}) next to llama.cpp's {peer}: pp512 {fmt(med(g['q_pp']))} vs {fmt(med(c['l_pp']))} "
                      f"({paired('q_pp', 'l_pp', (model, 'GPTQ'), (model, peer))}), tg128 {fmt(med(g['q_tg']))} vs "
                      f"{fmt(med(c['l_tg']))} ({paired('q_tg', 'l_tg', (model, 'GPTQ'), (model, peer))})")
    if any(c["b_pp"] for c in cells.values()):
        print("\nBefore / after (BASE_BENCH: the engine of the earlier commit; ratio = ours / it, median of per-repetition ratios):\n")
        print("| model | format | pp512 before | pp512 after | ratio | tg128 before | tg128 after | ratio |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for (model, form), c in cells.items():
            if c["b_pp"]:
                print(f"| {model} | {form} | {fmt(med(c['b_pp']))} | {fmt(med(c['q_pp']))} | {paired('q_pp', 'b_pp', (model, form))} | "
                      f"{fmt(med(c['b_tg']))} | {fmt(med(c['q_tg']))} | {paired('q_tg', 'b_tg', (model, form))} |")
    if loads:
        print(f"\nCPU used by other processes just before each measurement: {min(loads)}–{max(loads)}% "
              f"(median {statistics.median(loads)}%)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/cpu-speed/results.jsonl")
