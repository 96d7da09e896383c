# transformers' own float64 numbers for the 2026 reference models (../shared/models/gutenberg-gemma3-16m,
# gutenberg-qwen3moe-21m), whose reference.json was computed with TF32 products (logits good to ~1e-3).
# Run where PyTorch and transformers are (the GPU machine):
#   python3 make_golden.py MODEL_DIR OUT.json
# Kept: reference.json's golden prompt (its ids), the NLL of every next token and the five largest logits at
# reference.json's positions, all from the checkpoint's weights upcast to float64 (eager attention).
import json
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

model_dir, out = sys.argv[1], sys.argv[2]
ref = json.load(open(f"{model_dir}/reference.json"))
ids = ref["golden_prompt"]["ids"]
positions = sorted(int(p) for p in ref["golden_prompt"]["top5_logits"])
# Eager attention and, for MoE models, eager experts: transformers 5's grouped expert products take no float64.
try:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64, attn_implementation="eager",
                                                 experts_implementation="eager")
except (TypeError, ValueError):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64, attn_implementation="eager")
model.eval()
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0]  # [T, vocab] float64
logp = torch.log_softmax(logits, dim=-1)
nll = [float(-logp[t, ids[t + 1]]) for t in range(len(ids) - 1)]
top5 = {}
for p in positions:
    v, i = torch.topk(logits[p], 5)
    top5[str(p)] = [[int(a), float(b)] for a, b in zip(i.tolist(), v.tolist())]
json.dump({"model": model_dir.rstrip("/").split("/")[-1], "architecture": type(model).__name__,
           "transformers": transformers.__version__, "torch": torch.__version__, "dtype": "float64",
           "ids": ids, "nll": nll, "top5_logits": top5}, open(out, "w"), indent=1)
old = ref["golden_prompt"]["nll"]
print(out, type(model).__name__, "max |nll - reference.json| =", max(abs(a - b) for a, b in zip(nll, old)))
