// quantllm: the whole public C++ API. Front ends (the CLI, the Python module) include only these headers.
#pragma once

#include "quantllm/awq.h"
#include "quantllm/calibration.h"
#include "quantllm/error.h"
#include "quantllm/eval.h"
#include "quantllm/gguf.h"
#include "quantllm/gptq.h"
#include "quantllm/model.h"
#include "quantllm/quantize.h"
#include "quantllm/synth.h"
#include "quantllm/util.h"
