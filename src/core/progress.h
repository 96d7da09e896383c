// Progress reporting on stderr: the public quantllm::Progress (include/quantllm/util.h), implemented in
// progress.cpp.
#pragma once

#include "quantllm/util.h"
