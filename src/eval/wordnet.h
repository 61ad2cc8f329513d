// WordNet's synonym sets, for METEOR's synonym module: the synsets of a word and of its base forms
// (morphy's exception lists and detachment rules) in every part of speech.
//
// Only the index.* and *.exc files are read: a synset is identified by its byte offset in
// data.<pos>, which the index lists, so the data files themselves are never needed to decide
// whether two words share a synset.
//
// What must hold: two words share a synset exactly when their synsets() have an element in
// common; read-only, and so thread-safe, once constructed.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace drivevqa {

class WordNet {
 public:
  static constexpr size_t kPosCount = 4;  // noun, verb, adjective, adverb

  // Reads the index and exception files of `dir` (Debian package wordnet-base:
  // /usr/share/wordnet). Throws InputError naming the folder or file when one is missing,
  // unreadable or not in WordNet's format.
  explicit WordNet(const std::filesystem::path& dir);

  // Synsets of `word` and of its base forms in every part of speech, sorted, without repeats.
  std::vector<uint32_t> synsets(std::string_view word) const;

 private:
  struct Lemma {  // 12 bytes for each of WordNet's 155k (lemma, part of speech) entries
    uint32_t text_begin, synset_begin;
    uint16_t text_size, synset_count;
  };

  std::string_view text_of(const Lemma& lemma) const { return {text_.data() + lemma.text_begin, lemma.text_size}; }
  const Lemma* find(std::string_view lemma, size_t pos) const;
  std::vector<const Lemma*> base_lemmas(std::string_view word, size_t pos) const;
  void read_index(const std::filesystem::path& dir, size_t pos);
  void read_exceptions(const std::filesystem::path& dir, size_t pos);

  std::string text_;                  // every lemma, back to back
  std::vector<uint32_t> synset_ids_;  // every lemma's synsets, back to back
  std::array<std::vector<Lemma>, kPosCount> lemmas_;  // per part of speech, sorted by text
  std::array<std::unordered_map<std::string, std::vector<std::string>>, kPosCount> exceptions_;
};

}  // namespace drivevqa
