// Errors that cross module boundaries, and the process exit codes they map to at the edge.
//
// Inside the library every failure is an exception derived from drivevqa::Error. Its message is
// complete and user-facing: it names the file or item and the problem. The command-line edge
// prints it on one line and exits with error.exit_code().
#pragma once

#include <stdexcept>
#include <string>

namespace drivevqa {

// Documented in README.md ("Exit codes"); keep both in sync.
enum class ExitCode : int {
  kOk = 0,
  kFailure = 1,      // anything not classified below
  kUsage = 2,        // bad command line
  kInput = 3,        // unreadable or malformed input data (question file, image, KB)
  kModel = 4,        // model files missing, not GGUF, or rejected by the engine
  kOutput = 5,       // results, journal or generated files could not be written
  kMemory = 6,       // a model does not fit in the memory limits (ulimit -v, cgroup, RAM, GPU)
  kInterrupted = 130 // SIGINT / SIGTERM
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }
  int exit_code() const { return static_cast<int>(code_); }

 private:
  ExitCode code_;
};

struct InputError : Error {
  explicit InputError(const std::string& m) : Error(ExitCode::kInput, m) {}
};
struct ModelError : Error {
  explicit ModelError(const std::string& m) : Error(ExitCode::kModel, m) {}

 protected:
  ModelError(ExitCode code, const std::string& m) : Error(code, m) {}
};
// A model that cannot be used for lack of memory: a ModelError (the 72B model's fallback acts on
// it) with its own exit code.
struct MemoryError : ModelError {
  explicit MemoryError(const std::string& m) : ModelError(ExitCode::kMemory, m) {}
};
struct OutputError : Error {
  explicit OutputError(const std::string& m) : Error(ExitCode::kOutput, m) {}
};
struct UsageError : Error {
  explicit UsageError(const std::string& m) : Error(ExitCode::kUsage, m) {}
};

// Runs `f`, reporting an input error inside it as a model error: a model's or adapter's files
// that are missing or malformed are exit 4 (README "Exit codes"), whichever reader found them.
template <typename F>
auto as_model_error(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const InputError& e) {
    throw ModelError(e.what());
  }
}

}  // namespace drivevqa
