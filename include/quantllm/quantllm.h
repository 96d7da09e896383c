// quantllm: the whole public C++ API.
#pragma once

#include "quantllm/awq.h"
#include "quantllm/calibration.h"
#include "quantllm/gguf.h"
#include "quantllm/gptq.h"
#include "quantllm/model.h"
