// The finite-value checks of engine/finite_values.h for safetensors tensors, as the converters
// read them.
#pragma once

#include <string>

#include "convert/safetensors.h"
#include "engine/finite_values.h"

namespace drivevqa {

ggml_type ggml_type_of(StDtype dtype);

// The view's raw data in its own dtype (no conversion).
ValueScan scan_tensor(const TensorView& view);

// Throws InputError "<what>: element i is NaN (...)" unless every value is finite.
void require_finite(const TensorView& view, const std::string& what);

}  // namespace drivevqa
