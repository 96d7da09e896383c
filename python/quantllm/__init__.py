"""quantllm: post-training quantization of language models (GPTQ, AWQ, GGUF) on a C++ engine.

The seed library's interface, without PyTorch::

    from quantllm import Model, ModelConfig
    from quantllm.quant import GPTQQuantizer

    model = Model(ModelConfig(model_name="path/to/hf-checkpoint-dir")).get_model()
    tokenizer = Model(ModelConfig(model_name="path/to/hf-checkpoint-dir")).get_tokenizer()
    quantized = GPTQQuantizer(model=model, bits=4, group_size=128, actorder=True).quantize(
        calibration_data=["some text", "more text"])
    quantized.save("model-gptq-w4g128")          # the files `quantllm quantize --method gptq` writes
    logits = quantized(**tokenizer("Hello, world!", return_tensors="pt"))   # float32 [1, seq, vocab]

Every call goes to the C++ library (include/quantllm); errors raise QuantLLMError (a RuntimeError)
with the C++ message. Logits support the buffer protocol: memoryview(logits), numpy.asarray(logits).
"""

import os as _os

from . import _quantllm
from ._quantllm import Logits, QuantLLMError, num_threads, set_num_threads

__all__ = [
    "AutoTokenizer", "LanguageModel", "Logits", "Model", "ModelConfig", "QuantLLMError", "Tokenizer",
    "load_model", "num_threads", "set_num_threads",
]
__version__ = "0.1.0"


class ModelConfig:
    """Which model to open. model_name is a local Hugging Face checkpoint directory (config.json,
    tokenizer.json, *.safetensors), a directory quantllm wrote (GPTQ / AWQ) or a .gguf file; nothing is
    downloaded. device: only "cpu" (and "auto") run here. num_threads: threads of the C++ engine
    (0: all cores)."""

    def __init__(self, model_name, tokenizer_name=None, device="cpu", num_threads=0, **kwargs):
        if not isinstance(model_name, (str, _os.PathLike)):
            raise TypeError("ModelConfig.model_name must be a path, got %r" % (model_name,))
        self.model_name = _os.fspath(model_name)
        self.tokenizer_name = _os.fspath(tokenizer_name) if tokenizer_name is not None else self.model_name
        if device not in ("cpu", "auto", None):
            raise ValueError("ModelConfig.device %r: this build runs on the CPU only" % (device,))
        self.device = "cpu"
        self.num_threads = int(num_threads)
        self.extra = dict(kwargs)  # the seed's other options (dtype, trust_remote_code, …): accepted, unused

    def __repr__(self):
        return "ModelConfig(model_name=%r)" % (self.model_name,)


class Tokenizer:
    """The model's tokenizer.json (exactly as transformers tokenizes). Calling it returns
    {"input_ids": [[...]], "attention_mask": [[...]]} like a transformers tokenizer; return_tensors is
    accepted and the ids stay Python lists (there is no PyTorch here)."""

    def __init__(self, engine_tokenizer):
        self._tok = engine_tokenizer

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        return cls(_quantllm.Tokenizer.from_dir(_os.fspath(path)))

    def encode(self, text, add_special_tokens=True):
        return self._tok.encode(text, add_special_tokens)

    def decode(self, ids, skip_special_tokens=False):
        return self._tok.decode(list(ids), skip_special_tokens)

    def __call__(self, text, return_tensors=None, add_special_tokens=True, padding=False, **kwargs):
        texts = [text] if isinstance(text, str) else list(text)
        ids = [self._tok.encode(t, add_special_tokens) for t in texts]
        if len({len(i) for i in ids}) > 1:
            raise QuantLLMError("tokenizer: texts of different lengths in one batch (padding is not supported)")
        return {"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]}

    @property
    def vocab_size(self):
        return self._tok.vocab_size

    @property
    def bos_token_id(self):
        return self._tok.bos_token_id

    @property
    def eos_token_id(self):
        return self._tok.eos_token_id

    @property
    def pad_token_id(self):
        return self._tok.pad_token_id


AutoTokenizer = Tokenizer  # AutoTokenizer.from_pretrained(path)


def _as_token_rows(input_ids):
    """input_ids as (flat list, n_seq, seq_len, was_flat): a sequence of ints, a sequence of
    equal-length sequences, or a buffer (array.array, NumPy array) of integers of either shape."""
    if isinstance(input_ids, (bytes, str)):
        raise TypeError("input_ids must be token ids, not %s" % type(input_ids).__name__)
    try:
        mv = memoryview(input_ids)
    except TypeError:
        mv = None
    if mv is not None:
        if mv.ndim not in (1, 2) or mv.format not in ("b", "B", "h", "H", "i", "I", "l", "L", "q", "Q"):
            raise TypeError("input_ids buffer must be 1-D or 2-D integers, got format %r ndim %d" % (mv.format, mv.ndim))
        rows = mv.tolist()
    else:
        rows = list(input_ids)
    if rows and not isinstance(rows[0], int):
        rows = [list(r) for r in rows]
        if len({len(r) for r in rows}) != 1:
            raise QuantLLMError("input_ids: sequences of different lengths in one batch (padding is not supported)")
        return [int(t) for r in rows for t in r], len(rows), len(rows[0]), False
    if not rows:
        raise QuantLLMError("input_ids is empty")
    return [int(t) for t in rows], 1, len(rows), True


class LanguageModel:
    """A model the C++ engine runs: a checkpoint as opened, or the result of a quantizer. Calling it
    returns the logits of every position (fp32 forward pass; quantized layers dequantized)."""

    def __init__(self, engine, config=None):
        self._engine = engine
        self.config = config

    @property
    def tokenizer(self):
        return Tokenizer(self._engine.tokenizer)

    @property
    def model_config(self):
        """The architecture (config.json) as a dict."""
        return self._engine.config

    @property
    def path(self):
        return self._engine.path

    def __call__(self, input_ids=None, attention_mask=None, **kwargs):
        """Logits of every position: input_ids [seq] gives float32 [seq, vocab], [batch, seq] (what the
        tokenizer returns) gives [batch, seq, vocab]. attention_mask, when given, must be all ones."""
        if input_ids is None:
            raise TypeError("input_ids is required")
        if attention_mask is not None:
            flat_mask, _, _, _ = _as_token_rows(attention_mask)
            if any(v != 1 for v in flat_mask):
                raise QuantLLMError("attention_mask with zeros (padding) is not supported")
        tokens, n_seq, seq_len, flat = _as_token_rows(input_ids)
        return self._engine.forward(tokens, n_seq, seq_len, flat)

    forward = __call__

    def save(self, path, overwrite=False):
        """Writes a quantization result: the same files as `quantllm quantize` with the same options."""
        self._engine.save(_os.fspath(path), overwrite)

    save_pretrained = save

    def __repr__(self):
        return "<quantllm %s>" % (self._engine.description,)


def load_model(path):
    """Opens a Hugging Face directory, a GPTQ / AWQ directory or a .gguf file."""
    return LanguageModel(_quantllm.load_model(_os.fspath(path)))


class Model:
    """The seed's loader: Model(ModelConfig(model_name=...)).get_model() / .get_tokenizer()."""

    def __init__(self, config):
        if isinstance(config, (str, _os.PathLike)):
            config = ModelConfig(model_name=config)
        self.config = config
        self._model = None
        self._tokenizer = None

    def get_model(self):
        if self._model is None:
            if self.config.num_threads:
                set_num_threads(self.config.num_threads)
            self._model = LanguageModel(_quantllm.load_model(self.config.model_name), self.config)
        return self._model

    def get_tokenizer(self):
        if self._tokenizer is None:
            if self.config.tokenizer_name == self.config.model_name:
                self._tokenizer = self.get_model().tokenizer  # a .gguf file holds its tokenizer
            else:
                self._tokenizer = Tokenizer.from_pretrained(self.config.tokenizer_name)
        return self._tokenizer
