# transformers' logits for tests/model/qwen3_test.cpp's random-weight Qwen3 checkpoint, in float64.
# Run where PyTorch and transformers are (the GPU machine): python3 make_golden.py CHECKPOINT_DIR OUT.json
# The checkpoint comes from tests/golden/write_qwen3_checkpoint.cpp. Tokens: (i * 7919 + 13) % 8000,
# i < 24, as the test's tokens_of(24). Kept: every position's 8 largest logits (id, value) and the last
# position's full row.
import json
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

ckpt, out = sys.argv[1], sys.argv[2]
model = AutoModelForCausalLM.from_pretrained(ckpt, torch_dtype=torch.float64, attn_implementation="eager")
model.eval()
assert type(model).__name__ == "Qwen3ForCausalLM", type(model).__name__
tokens = [(i * 7919 + 13) % 8000 for i in range(24)]
with torch.no_grad():
    logits = model(torch.tensor([tokens])).logits[0]  # [T, vocab] float64
top = []
for t in range(len(tokens)):
    v, i = torch.topk(logits[t], 8)
    top.append({"position": t, "logits": [[int(a), float(b)] for a, b in zip(i.tolist(), v.tolist())]})
json.dump({"model": "tests/model/qwen3_test.cpp qwen3_spec() (seed 316)", "transformers": transformers.__version__,
           "torch": torch.__version__, "dtype": "float64", "tokens": tokens, "vocab": int(logits.shape[1]),
           "top": top, "last": logits[-1].tolist()}, open(out, "w"))
print("wrote", out, "vocab", logits.shape[1], "max |logit|", float(logits.abs().max()))
