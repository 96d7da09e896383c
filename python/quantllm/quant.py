"""The seed's quantizers on quantllm's C++ engine: GPTQQuantizer, AWQQuantizer, GGUFQuantizer.

Each is a thin layer over the C++ API (include/quantllm/gptq.h, awq.h, gguf.h), which the CLI's
`quantllm quantize` runs too: the same options give the same bytes.

calibration_data is one of
  - a list of strings: texts, joined with blank lines ("\\n\\n") and tokenized as one text, from which
    windows are drawn exactly as from a --calib file holding that joined text;
  - a path (str or os.PathLike): a UTF-8 text file, as `quantize --calib FILE`; "self" samples text from
    the model itself, as `--calib self`;
  - a list of token-id sequences (lists, array.array, NumPy rows …) of one length: windows used as
    they are (nsamples / seqlen / calibration_steps do not apply).

Seed parameters without a C++ counterpart:
  - use_triton (GPTQ): runs calibration and GPTQ on the GPU (device="cuda") when the engine was built
    with the CUDA backend (quantllm._quantllm.has_cuda) and a GPU answers; otherwise it says so once on
    stderr and the CPU engine runs. device="cpu" / "cuda" (GPTQ and AWQ) chooses explicitly.
  - version (AWQ): "v2", "gemm" (any case) -> the AutoAWQ GEMM layout, the one layout written; others
    raise QuantLLMError.
  - use_packed (GGUF): GGUF blocks are always packed; accepted, no effect.
  - bits / group_size (GGUF): bits choose llama.cpp's usual type of that width (BITS_TO_GGUF_TYPE:
    4 -> Q4_K_M, …) whose blocks hold 32 (or 16) weights per scale; group_size must be 32 (the block of
    Q4_K, Q5_K, Q8_0 …). type="Q4_0" (or any llama.cpp type or mix) picks the type directly.
"""

import os
import sys
import tempfile
import weakref

from . import _quantllm
from . import LanguageModel, QuantLLMError

__all__ = ["AWQQuantizer", "BITS_TO_GGUF_TYPE", "GGUFQuantizer", "GPTQQuantizer"]

# llama.cpp's usual choice for each width (its README's recommended mixes; 7 bits has no type).
BITS_TO_GGUF_TYPE = {2: "Q2_K", 3: "Q3_K_M", 4: "Q4_K_M", 5: "Q5_K_M", 6: "Q6_K", 8: "Q8_0"}

_said_no_gpu = False


def _no_gpu_note():
    global _said_no_gpu
    if not _said_no_gpu:
        _said_no_gpu = True
        why = "no CUDA device answers" if _quantllm.has_cuda else "this build has no CUDA backend"
        print("quantllm: use_triton=True: %s; quantizing on the CPU" % why, file=sys.stderr)


def _engine_of(model):
    if isinstance(model, LanguageModel):
        return model._engine
    if isinstance(model, (str, os.PathLike)):
        return _quantllm.load_model(os.fspath(model))
    raise TypeError("model must be a quantllm model (Model(ModelConfig(...)).get_model()) or a path, got %s"
                    % type(model).__name__)


def _calibration(data):
    """(file, texts, windows) for the engine; see the module's docstring."""
    if data is None:
        raise QuantLLMError("calibration_data is required: a list of texts, a text file's path or token windows")
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if path != "self" and not os.path.isfile(path):
            raise QuantLLMError("calibration_data %r: no such file (a string is a file's path; pass texts as a list)"
                                % (path if len(path) < 80 else path[:77] + "...",))
        return path, [], []
    items = list(data)
    if not items:
        raise QuantLLMError("calibration_data is empty")
    if all(isinstance(t, str) for t in items):
        return None, items, []
    windows = []
    for w in items:
        if isinstance(w, (str, bytes)):
            raise TypeError("calibration_data mixes texts and token windows")
        try:
            row = memoryview(w).tolist()
        except TypeError:
            row = list(w)
        windows.append([int(t) for t in row])
    return None, [], windows


class GPTQQuantizer:
    """GPTQ (Frantar et al. 2022), block by block, written as a GPTQ checkpoint transformers / vLLM load.

    bits 2..8; group_size (-1: one group per row); actorder = desc_act; sym: no zero point;
    nsamples / seqlen / seed: the calibration windows drawn from text (the CLI's --nsamples 128
    --seqlen 512 --seed 0); format "gptq", "gptq_v2" or "compressed-tensors"; rtn=True: round-to-nearest, no calibration;
    mixture-of-experts models: moe_calibration "routed" (experts under moe_min_tokens routed tokens are
    rounded to nearest) or "all-experts" (the CLI's --moe-calibration)."""

    def __init__(self, model, bits=4, group_size=128, actorder=False, use_triton=False, sym=False,
                 damp_percent=0.01, static_groups=False, true_sequential=True, mse=False, nsamples=128,
                 seqlen=512, seed=0, format="gptq", rtn=False, desc_act=None, progress=True, device=None,
                 moe_calibration="routed", moe_min_tokens=128):
        self.model = model
        self._engine = _engine_of(model)
        c = _quantllm.GPTQConfig()
        c.bits = int(bits)
        c.group_size = int(group_size)
        c.actorder = bool(actorder if desc_act is None else desc_act)
        c.sym = bool(sym)
        c.damp_percent = float(damp_percent)
        c.static_groups = bool(static_groups)
        c.true_sequential = bool(true_sequential)
        c.mse = bool(mse)
        c.nsamples = int(nsamples)
        c.seqlen = int(seqlen)
        c.seed = int(seed)
        c.format = str(format)
        c.rtn = bool(rtn)
        c.moe_calibration = str(moe_calibration)
        c.moe_min_tokens = int(moe_min_tokens)
        if not 2 <= c.bits <= 8:
            raise QuantLLMError("GPTQQuantizer: bits must be between 2 and 8, got %d" % c.bits)
        self.config = c
        self.use_triton = bool(use_triton)
        self.progress = progress
        # The seed's GPU switch: the CUDA backend when this build has one (device= says it explicitly).
        if device is not None:
            c.device = str(device)
        elif self.use_triton:
            if _quantllm.cuda_device_usable():
                c.device = "cuda"
            else:
                _no_gpu_note()

    @property
    def bits(self):
        return self.config.bits

    @property
    def group_size(self):
        return self.config.group_size

    def quantize(self, calibration_data=None, calibration_steps=None):
        """Returns the quantized model: call it for logits, .save(dir) to write the checkpoint.
        calibration_steps, when given, is the number of windows (nsamples)."""
        if calibration_steps is not None:
            self.config.nsamples = int(calibration_steps)
        if self.config.rtn:
            file, texts, windows = None, [], []
        else:
            file, texts, windows = _calibration(calibration_data)
        engine = _quantllm.gptq_quantize(self._engine, self.config, file, texts, windows, bool(self.progress))
        return LanguageModel(engine, getattr(self.model, "config", None))


class AWQQuantizer:
    """AWQ (Lin et al. 2024): activation-aware scale search, folding and clipping search, written as an
    AutoAWQ GEMM checkpoint. bits: 4 (the GEMM layout's width; others raise); group_size; zero_point
    (False: symmetric); version "v2" / "gemm" -> GEMM; seqlen / seed of the calibration windows;
    act_floor: the floor of seldom-used channels' activations in the scale search (0: AutoAWQ's search);
    calibration_steps (quantize): the number of windows (the CLI's --nsamples)."""

    def __init__(self, model, bits=4, group_size=128, zero_point=True, version="gemm", seqlen=512, seed=0,
                 search_tokens=8192, progress=True, device="cpu", act_floor=0.3):
        self.model = model
        self._engine = _engine_of(model)
        c = _quantllm.AWQConfig()
        c.device = str(device)
        c.bits = int(bits)
        c.group_size = int(group_size)
        c.zero_point = bool(zero_point)
        v = str(version)
        c.version = "gemm" if v.lower() in ("v2", "gemm") else v
        c.seqlen = int(seqlen)
        c.seed = int(seed)
        c.search_tokens = int(search_tokens)
        c.act_floor = float(act_floor)
        self.config = c
        self.version = v
        self.progress = progress
        # Checks bits, version and seqlen now, as the C++ constructor does.
        if c.version != "gemm":
            raise QuantLLMError("AWQQuantizer: version %r is not supported (supported: 'v2' / 'gemm', the GEMM layout)" % v)
        if c.bits != 4:
            raise QuantLLMError("AWQQuantizer: the GEMM layout stores 4-bit weights, got bits %d" % c.bits)

    @property
    def bits(self):
        return self.config.bits

    @property
    def group_size(self):
        return self.config.group_size

    def quantize(self, calibration_data=None, calibration_steps=128):
        file, texts, windows = _calibration(calibration_data)
        engine = _quantllm.awq_quantize(self._engine, self.config, file, texts, windows, int(calibration_steps),
                                        bool(self.progress))
        return LanguageModel(engine, getattr(self.model, "config", None))


class GGUFQuantizedModel(LanguageModel):
    """What GGUFQuantizer.quantize() returns: runs the GGUF file the quantizer writes (its last
    convert_to_gguf, or a temporary one written on the first call)."""

    def __init__(self, quantizer):
        self._quantizer = quantizer
        self._loaded_from = None
        self._tmpdir = None
        self.config = getattr(quantizer.model, "config", None)

    @property
    def _engine(self):
        q = self._quantizer
        if q.output_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="quantllm-gguf-")
            weakref.finalize(self, _remove_tree, self._tmpdir)
            q.convert_to_gguf(os.path.join(self._tmpdir, "model.gguf"))
        if self._loaded_from != q.output_path:
            self._cached = _quantllm.load_model(q.output_path)
            self._loaded_from = q.output_path
        return self._cached

    def save(self, path, overwrite=False):
        self._quantizer.convert_to_gguf(path, overwrite=overwrite)

    save_pretrained = save

    def __repr__(self):
        return "<quantllm GGUF %s>" % (self._quantizer.type,)


def _remove_tree(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)


class GGUFQuantizer:
    """GGUF for llama.cpp, byte for byte what llama.cpp's quantizer writes.

    bits -> type by BITS_TO_GGUF_TYPE (4 -> Q4_K_M), or type= any llama.cpp type / mix ("Q4_0", "Q8_0",
    "IQ4_XS" …); group_size must be 32 (llama.cpp's blocks); use_packed accepted (GGUF is always packed);
    pure / tensor_types / imatrix as `quantize --pure / --tensor-type / --imatrix`; gptq=True: GPTQ's error
    feedback into the blocks (`quantize --gptq`), calibrated by quantize(calibration_data) on nsamples windows
    of seqlen tokens. target_bpw=3.5: a size instead of a type (`quantize --target-bpw`), each tensor's type
    chosen from its sensitivity measured on quantize(calibration_data), a text file's path."""

    def __init__(self, model, bits=4, group_size=32, use_packed=True, type=None, pure=False, tensor_types=(),
                 imatrix=None, progress=True, gptq=False, nsamples=128, seqlen=512, seed=0, target_bpw=None):
        self.model = model
        self._engine = _engine_of(model)
        self.target_bpw = float(target_bpw) if target_bpw else 0.0
        if self.target_bpw and type is not None:
            raise QuantLLMError("GGUFQuantizer: target_bpw chooses every tensor's type; leave out type=")
        if self.target_bpw:
            type = "target"  # replaced by the chosen mix's name in the plan
        if type is None:
            if int(bits) not in BITS_TO_GGUF_TYPE:
                raise QuantLLMError("GGUFQuantizer: no GGUF type of %d bits (have %s); pass type=..."
                                    % (int(bits), ", ".join("%d: %s" % kv for kv in BITS_TO_GGUF_TYPE.items())))
            type = BITS_TO_GGUF_TYPE[int(bits)]
            if int(group_size) != 32:
                raise QuantLLMError("GGUFQuantizer: GGUF types quantize blocks of 32 weights, got group_size %d"
                                    % int(group_size))
        self.type = str(type)
        self.bits = int(bits)
        self.group_size = int(group_size)
        self.use_packed = bool(use_packed)
        self.progress = progress
        self.output_path = None
        self.gptq = bool(gptq)
        self._q = _quantllm.GGUFQuantizerEngine(self._engine, self.type, bool(pure), list(tensor_types),
                                                os.fspath(imatrix) if imatrix else "", self.gptq, int(nsamples),
                                                int(seqlen), int(seed), self.target_bpw)
        self._planned = False

    def quantize(self, calibration_data=None):
        """Plans every tensor's type (llama.cpp's mix rules); returns the model, which runs the GGUF file
        once written. calibration_data: only with gptq=True or target_bpw= (a text file's path for target_bpw;
        llama.cpp's rounding takes an importance matrix: imatrix=)."""
        if self.gptq or self.target_bpw:
            file, texts, windows = _calibration(calibration_data)
            self._q.quantize_calibrated(file, texts, windows)
        elif calibration_data is not None:
            raise QuantLLMError("GGUFQuantizer.quantize: GGUF takes no calibration data (pass imatrix= instead, "
                                "or gptq=True, or target_bpw=)")
        else:
            self._q.quantize()
        self._planned = True
        return GGUFQuantizedModel(self)

    def plan(self):
        """[{name, shape, type, bytes}] of every tensor, after quantize()."""
        return self._q.plan()

    def convert_to_gguf(self, path, overwrite=False):
        """Quantizes and writes the .gguf file (atomically; an existing file only with overwrite)."""
        path = os.fspath(path)
        if not self._planned:
            self.quantize()
        self._q.convert_to_gguf(path, overwrite, bool(self.progress))
        self.output_path = path
        return path
