"""The Python package (python/quantllm) against the CLI and the C++ engine, on gutenberg-opt-28m.

Runs issue 9's workflow -- Model(ModelConfig(...)).get_model(), GPTQQuantizer / AWQQuantizer /
GGUFQuantizer with the seed's parameters, quantize(calibration_data=...), save / convert_to_gguf,
quantized_model(**tokenizer("Hello, world!", return_tensors="pt")) -- and checks:

  - every file written from Python equals, byte for byte, what `quantllm quantize` writes with the same
    options. The Python side passes calibration_data as a list of texts (lines of
    ../shared/data/gutenberg-calib.txt); the CLI gets a --calib file holding exactly those texts joined
    by blank lines, which is what the API documents a list to mean. GPTQ runs once more from token-id
    windows drawn in Python the way the CLI draws them (random.seed(0), randint), to the same bytes.
  - the logits of each model (base, GPTQ, AWQ, GGUF) held in memory by Python give, over one window of
    wikitext, the perplexity that `quantllm eval ppl` computes from the files on disk (the C++ engine
    reading the saved checkpoint back): same tokens, same positions, same numbers.
  - C++ errors arrive as quantllm.QuantLLMError (a RuntimeError) carrying the C++ message.

Environment: PYTHONPATH=<build>/python, QUANTLLM_BIN (the CLI), QUANTLLM_SHARED_DIR (../shared).
Small calibration (4 windows of 64 tokens) keeps it to about a minute on 2 loaded cores.
"""

import array
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import unittest

import quantllm
from quantllm import Model, ModelConfig, QuantLLMError
from quantllm.quant import AWQQuantizer, GGUFQuantizer, GPTQQuantizer

SHARED = os.environ.get("QUANTLLM_SHARED_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
BIN = os.environ.get("QUANTLLM_BIN", "quantllm")
MODEL_DIR = os.path.join(SHARED, "models", "gutenberg-opt-28m")
NSAMPLES, SEQLEN, CTX = 4, 64, 32


def run_cli(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("quantllm %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
    return r.stdout


def tree_bytes(path):
    """{relative path: bytes} of a file or of every file under a directory."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return {".": f.read()}
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


def window_ppl(logits, window):
    """Perplexity of window[1:] under logits [1, len(window), vocab], in double (as eval ppl does)."""
    shape = logits.shape
    vocab = shape[-1]
    flat = memoryview(logits).cast("B").cast("f")
    nll = 0.0
    for pos in range(len(window) - 1):
        row = flat[pos * vocab:(pos + 1) * vocab].tolist()
        mx = max(row)
        s = math.fsum(math.exp(v - mx) for v in row)
        nll += math.log(s) + mx - row[window[pos + 1]]
    return math.exp(nll / (len(window) - 1))


class Workflow(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="quantllm-py-")
        cls.t = cls.tmp.name
        with open(os.path.join(SHARED, "data", "gutenberg-calib.txt"), encoding="utf-8") as f:
            head = f.read(40000)
        cls.texts = [line for line in head.split("\n")[:-1] if line.strip()]
        cls.calib_file = os.path.join(cls.t, "calib.txt")
        with open(cls.calib_file, "w", encoding="utf-8", newline="") as f:
            f.write("\n\n".join(cls.texts))
        with open(os.path.join(SHARED, "data", "wikitext2-test.raw"), encoding="utf-8") as f:
            cls.eval_text = f.read(4000)
        cls.eval_file = os.path.join(cls.t, "eval.txt")
        with open(cls.eval_file, "w", encoding="utf-8", newline="") as f:
            f.write(cls.eval_text)
        loader = Model(ModelConfig(model_name=MODEL_DIR))
        cls.model = loader.get_model()
        cls.tokenizer = loader.get_tokenizer()
        cls.common = ["--model", MODEL_DIR, "--nsamples", str(NSAMPLES), "--seqlen", str(SEQLEN)]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def out(self, name):
        return os.path.join(self.t, name)

    def assertSameFiles(self, py_path, cli_path):
        a, b = tree_bytes(py_path), tree_bytes(cli_path)
        self.assertEqual(sorted(a), sorted(b))
        for name in a:
            self.assertTrue(a[name] == b[name], "%s differs (%d vs %d bytes)" % (name, len(a[name]), len(b[name])))

    def eval_window(self):
        ids = self.tokenizer.encode(self.eval_text, add_special_tokens=False)
        return [self.tokenizer.bos_token_id] + ids[:CTX - 1]

    def assertLogitsMatchEngine(self, qmodel, saved_path):
        """qmodel's logits (Python, in memory) vs `eval ppl` on the saved files (CLI)."""
        window = self.eval_window()
        logits = qmodel(input_ids=[window])
        self.assertEqual(logits.shape, (1, CTX, 16384))
        got = window_ppl(logits, window)
        # --engine fp32: the Python model widens the weights too, so the two must agree to rounding order
        # (the CLI's default quantized engine rounds activations to 8 bits: ~0.05% on perplexity).
        want = json.loads(run_cli("eval", "ppl", "--model", saved_path, "--data", self.eval_file, "--ctx", str(CTX),
                                  "--max-windows", "1", "--engine", "fp32", "--json"))["ppl"]
        self.assertLess(abs(got - want), 1e-6 * want, "python %r vs eval ppl %r (%s)" % (got, want, saved_path))
        # The seed's call: tokenizer output straight into the model, logits [1, seq, vocab].
        enc = self.tokenizer("Hello, world!", return_tensors="pt")
        outputs = qmodel(**enc)
        self.assertEqual(outputs.shape, (1, len(enc["input_ids"][0]), 16384))
        self.assertEqual(memoryview(outputs).format, "f")
        self.assertIs(outputs.logits, outputs)
        print("  python %.10g, eval ppl %.10g (relative difference %.2g)" % (got, want, abs(got - want) / want),
              file=sys.stderr)
        return got

    def test_base_model_logits(self):
        enc = self.tokenizer("Hello, world!", return_tensors="pt")
        self.assertEqual(enc["input_ids"][0][0], self.tokenizer.bos_token_id)
        ppl = self.assertLogitsMatchEngine(self.model, MODEL_DIR)
        # flat ids (a 1-D array) give [seq, vocab], the same numbers as the batch of one
        ids = enc["input_ids"][0]
        flat = self.model(array.array("i", ids))
        self.assertEqual(flat.shape, (len(ids), 16384))
        self.assertEqual(bytes(memoryview(flat)), bytes(memoryview(self.model(**enc))))
        print("base: ppl of one %d-token window %.4f" % (CTX, ppl), file=sys.stderr)

    def test_gptq(self):
        quantizer = GPTQQuantizer(model=self.model, bits=4, group_size=128, actorder=True, use_triton=True,
                                  nsamples=NSAMPLES, seqlen=SEQLEN)
        quantized_model = quantizer.quantize(calibration_data=self.texts)
        quantized_model.save(self.out("py-gptq"))
        run_cli("quantize", *self.common, "--method", "gptq", "--bits", "4", "--group-size", "128", "--act-order",
                "--calib", self.calib_file, "--out", self.out("cli-gptq"))
        self.assertSameFiles(self.out("py-gptq"), self.out("cli-gptq"))
        ppl = self.assertLogitsMatchEngine(quantized_model, self.out("cli-gptq"))
        # Token windows are used as they are: the windows the CLI draws from its file (Python's
        # random.seed(0) / randint, calib/calibration.h), drawn here, give the same bytes again.
        ids = self.tokenizer.encode("\n\n".join(self.texts), add_special_tokens=False)
        span = SEQLEN - 1  # BOS in front
        random.seed(0)
        starts = [random.randint(0, len(ids) - span - 1) for _ in range(NSAMPLES)]
        windows = [array.array("i", [self.tokenizer.bos_token_id] + ids[i:i + span]) for i in starts]
        quantizer.quantize(calibration_data=windows).save(self.out("py-gptq-windows"))
        self.assertSameFiles(self.out("py-gptq-windows"), self.out("cli-gptq"))
        print("gptq: ppl %.4f" % ppl, file=sys.stderr)

    def test_awq(self):
        quantizer = AWQQuantizer(model=self.model, bits=4, group_size=128, zero_point=True, version="v2",
                                 seqlen=SEQLEN)
        quantized_model = quantizer.quantize(calibration_data=self.texts, calibration_steps=NSAMPLES)
        quantized_model.save(self.out("py-awq"))
        run_cli("quantize", *self.common, "--method", "awq", "--bits", "4", "--group-size", "128",
                "--calib", self.calib_file, "--out", self.out("cli-awq"))
        self.assertSameFiles(self.out("py-awq"), self.out("cli-awq"))
        ppl = self.assertLogitsMatchEngine(quantized_model, self.out("cli-awq"))
        print("awq: ppl %.4f" % ppl, file=sys.stderr)

    def test_gguf(self):
        quantizer = GGUFQuantizer(model=self.model, bits=4, group_size=32, use_packed=True)
        quantized_model = quantizer.quantize()
        quantizer.convert_to_gguf(self.out("py-model-q4.gguf"))
        run_cli("quantize", "--model", MODEL_DIR, "--method", "gguf", "--type", "Q4_K_M",
                "--out", self.out("cli-model-q4.gguf"))
        self.assertSameFiles(self.out("py-model-q4.gguf"), self.out("cli-model-q4.gguf"))
        self.assertEqual(quantizer.type, "Q4_K_M")
        self.assertTrue(any(p["type"] == "Q4_K" for p in quantizer.plan()))
        ppl = self.assertLogitsMatchEngine(quantized_model, self.out("cli-model-q4.gguf"))
        print("gguf Q4_K_M: ppl %.4f" % ppl, file=sys.stderr)

    def test_gguf_gptq(self):
        quantizer = GGUFQuantizer(model=self.model, type="Q4_K_M", gptq=True, nsamples=4, seqlen=SEQLEN)
        quantizer.quantize(calibration_data=self.calib_file)
        quantizer.convert_to_gguf(self.out("py-model-q4-gptq.gguf"))
        run_cli("quantize", "--model", MODEL_DIR, "--method", "gguf", "--type", "Q4_K_M", "--gptq",
                "--calib", self.calib_file, "--nsamples", "4", "--seqlen", str(SEQLEN),
                "--out", self.out("cli-model-q4-gptq.gguf"))
        self.assertSameFiles(self.out("py-model-q4-gptq.gguf"), self.out("cli-model-q4-gptq.gguf"))
        with self.assertRaisesRegex(QuantLLMError, "calibration_data is required"):
            GGUFQuantizer(model=self.model, type="Q4_K_M", gptq=True).convert_to_gguf(self.out("never.gguf"))

    def test_gguf_target_bpw(self):
        quantizer = GGUFQuantizer(model=self.model, target_bpw=4.5, nsamples=1, seqlen=64)
        quantizer.quantize(calibration_data=self.calib_file)
        quantizer.convert_to_gguf(self.out("py-model-4.5bpw.gguf"))
        run_cli("quantize", "--model", MODEL_DIR, "--method", "gguf", "--target-bpw", "4.5",
                "--calib", self.calib_file, "--nsamples", "1", "--seqlen", "64",
                "--out", self.out("cli-model-4.5bpw.gguf"))
        self.assertSameFiles(self.out("py-model-4.5bpw.gguf"), self.out("cli-model-4.5bpw.gguf"))
        with self.assertRaisesRegex(QuantLLMError, "leave out type"):
            GGUFQuantizer(model=self.model, target_bpw=4.5, type="Q4_K_M")
        with self.assertRaisesRegex(QuantLLMError, "between 1.5 and 16"):
            GGUFQuantizer(model=self.model, target_bpw=0.5)

    def test_errors_carry_the_cpp_message(self):
        with self.assertRaises(QuantLLMError) as e:
            GPTQQuantizer(model=self.model, bits=4, group_size=128, nsamples=2, seqlen=SEQLEN,
                          progress=False).quantize(calibration_data=["far too short"])
        self.assertIsInstance(e.exception, RuntimeError)
        self.assertIn("too short for one window of %d tokens" % SEQLEN, str(e.exception))  # calib/calibration.cpp
        with self.assertRaisesRegex(QuantLLMError, "outside the vocabulary"):
            self.model(input_ids=[1, 2, 999999])
        with self.assertRaisesRegex(QuantLLMError, "Q9_X"):
            GGUFQuantizer(model=self.model, type="Q9_X")
        with self.assertRaisesRegex(QuantLLMError, "no GGUF type of 7 bits"):
            GGUFQuantizer(model=self.model, bits=7)
        with self.assertRaisesRegex(QuantLLMError, "version"):
            AWQQuantizer(model=self.model, version="gemv")
        with self.assertRaisesRegex(QuantLLMError, "bits must be between 2 and 8"):
            GPTQQuantizer(model=self.model, bits=9)
        with self.assertRaisesRegex(QuantLLMError, "no such file"):
            GPTQQuantizer(model=self.model).quantize(calibration_data="missing-calib.txt")
        with self.assertRaises(QuantLLMError):
            Model(ModelConfig(model_name=os.path.join(self.t, "no-such-model"))).get_model()
        with self.assertRaisesRegex(QuantLLMError, "not a quantization result"):
            self.model.save(self.out("never"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
