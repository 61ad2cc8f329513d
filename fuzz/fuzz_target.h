// One fuzz target: a parser of outside input driven with arbitrary bytes.
//
// What must hold for every input: the parser returns or throws drivevqa::Error (a worded refusal);
// it never crashes, reads out of bounds, leaks, hits undefined behaviour or throws anything else.
// Built two ways: with clang's libFuzzer (fuzz.sh, coverage-guided, ASan + UBSan), and with any
// compiler as a replay program over the seed corpus plus seeded mutations (the CTest smoke run).
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
