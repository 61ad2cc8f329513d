// METEOR (Banerjee & Lavie; version 1.5's English parameters) without the Java jar: exact, Porter
// stem and WordNet synonym matching, weights 1.0 / 0.6 / 0.8, alpha 0.85, beta 0.2, gamma 0.6,
// delta 0.75 (content vs function words). The jar also matches paraphrases from its own tables,
// which are not used here, so scores can be lower than the jar's.
//
// Inputs are tokenised with coco_tokens() first, as pycocoevalcap hands the jar tokenised text.
// Thread-safe after load() (read-only).
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace drivevqa {

class Meteor {
 public:
  // Reads WordNet's data files (Debian package wordnet-base: /usr/share/wordnet). Throws
  // InputError naming the folder when they are missing or unreadable.
  static std::unique_ptr<Meteor> load(const std::filesystem::path& wordnet_dir = "/usr/share/wordnet");
  ~Meteor();

  // One answer against its reference, in [0, 1].
  double segment(std::string_view prediction, std::string_view reference) const;
  // The set's score from the summed statistics of every pair (as the jar's final score).
  double corpus(std::span<const std::string> predictions, std::span<const std::string> references) const;

 private:
  struct Impl;
  explicit Meteor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drivevqa
