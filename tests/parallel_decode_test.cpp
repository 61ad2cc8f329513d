// engine/parallel_decode.h: requests that join a decode_parallel call while it runs (MoreRequests).
#include <gtest/gtest.h>

#include "engine/parallel_decode.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {

class JoiningRequests : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = test::load_tiny_model().release(); }
  static void TearDownTestSuite() { delete model_; }

  void SetUp() override {
    prefix_ = std::make_unique<EncodedPrompt>(encode(*model_, tokenize(*model_, "<|im_start|>system\nYou drive.<|im_end|>\n", {})));
    for (const char* q : {"Is it safe?", "What is ahead?", "Which lane?", "Why stop?"}) {
      const std::string text = std::string("<|im_start|>user\n") + q + "<|im_end|>\n<|im_start|>assistant\n";
      suffixes_.push_back(encode(*model_, tokenize(*model_, text, {}, false)));
    }
    for (const EncodedPrompt& s : suffixes_) {
      GenerationParams p;
      p.max_new_tokens = 6;
      requests_.push_back({&s, p});
    }
  }

  struct Decoded {
    std::vector<std::string> texts;  // by on_done index
    ParallelDecodeStats stats;
  };
  // `given` up front, `more` (optional) while it runs, in a fresh context holding the prefix.
  Decoded decode(std::span<const QuestionRequest> given, int max_parallel, const MoreRequests* more = nullptr) {
    SessionOptions options;
    options.n_ctx = 512;
    options.n_seq_max = 8;
    Session session(*model_, options);
    const SharedPrefix prefix{0, session.evaluate(*prefix_, 0, 0, false), prefix_->prompt.token_count()};
    Decoded d;
    decode_parallel(session, std::span(&prefix, 1), given, max_parallel, 1, [&](size_t i, Generation g) {
      if (d.texts.size() <= i) d.texts.resize(i + 1);
      d.texts[i] = g.text;
    }, &d.stats, more);
    return d;
  }

  static Model* model_;
  std::unique_ptr<EncodedPrompt> prefix_;
  std::vector<EncodedPrompt> suffixes_;
  std::vector<QuestionRequest> requests_;
};
Model* JoiningRequests::model_ = nullptr;

// The joined requests are numbered after the given ones, and with one question at a time (the
// same batches as when all are given) their answers are exactly those of the requests given up front.
TEST_F(JoiningRequests, AreAnsweredAsIfGivenFromTheStart) {
  const Decoded reference = decode(requests_, 1);
  ASSERT_EQ(reference.texts.size(), 4u);
  size_t calls = 0;
  const MoreRequests more = [&] {
    ++calls;
    if (calls == 1) return std::vector<QuestionRequest>(requests_.begin() + 1, requests_.begin() + 3);
    if (calls == 2) return std::vector<QuestionRequest>(requests_.begin() + 3, requests_.end());
    return std::vector<QuestionRequest>();
  };
  const Decoded joined = decode(std::span(requests_).first(1), 1, &more);
  EXPECT_EQ(joined.texts, reference.texts);
  EXPECT_GE(calls, 3u) << "asked again until it had nothing more";
  EXPECT_EQ(joined.stats.max_running, 1u);
}

// With room for all, a request that joins is decoded beside the running one, in the same steps.
TEST_F(JoiningRequests, JoinTheRunningBatch) {
  size_t calls = 0;
  const MoreRequests more = [&] {
    return ++calls == 1 ? std::vector<QuestionRequest>(requests_.begin() + 1, requests_.end()) : std::vector<QuestionRequest>();
  };
  const Decoded joined = decode(std::span(requests_).first(1), 4, &more);
  ASSERT_EQ(joined.texts.size(), 4u);
  EXPECT_EQ(joined.stats.max_running, 4u);
  const Decoded one_by_one = decode(requests_, 1);
  EXPECT_LT(joined.stats.decode_calls, one_by_one.stats.decode_calls);
  EXPECT_EQ(joined.stats.generated_tokens, one_by_one.stats.generated_tokens) << "every answer got its whole budget";
}

TEST_F(JoiningRequests, ThatForkFirstOrNameAPrefixNotHeldAreRefused) {
  QuestionRequest fork = requests_[0];
  fork.forks_previous = true;
  const MoreRequests forks = [&] { return std::vector<QuestionRequest>{fork}; };
  EXPECT_THROW(decode(std::span(requests_).first(1), 2, &forks), ModelError);
  QuestionRequest elsewhere = requests_[1];
  elsewhere.prefix = 1;
  const MoreRequests unheld = [&] { return std::vector<QuestionRequest>{elsewhere}; };
  EXPECT_THROW(decode(std::span(requests_).first(1), 2, &unheld), ModelError);
}

}  // namespace
}  // namespace drivevqa
