#include "eval/wordnet.h"

#include <algorithm>
#include <charconv>

#include "util/error.h"
#include "util/files.h"

namespace drivevqa {
namespace {

constexpr size_t kPosCount = WordNet::kPosCount;
constexpr std::array<std::string_view, kPosCount> kPosNames{"noun", "verb", "adj", "adv"};

// WordNet's detachment rules (morphy(7WN)): an inflected ending and the base ending it replaces.
struct Detachment {
  std::string_view suffix, ending;
};
const std::array<std::vector<Detachment>, kPosCount> kDetachments{{
    {{"s", ""}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"}},
    {{"s", ""}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""}},
    {{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}},
    {},
}};

std::string read_wordnet_file(const std::filesystem::path& dir, const std::string& name) {
  try {
    return read_text_file(dir / name);  // a FIFO or device planted there is refused, never waited on
  } catch (const InputError& e) {
    throw InputError("WordNet folder " + dir.string() + ": cannot read " + name + ": " + e.what() +
                     " (install the Debian package wordnet-base)");
  }
}

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

template <typename F>
void for_each_line(std::string_view text, F&& on_line) {
  for (size_t start = 0, line_number = 1; start < text.size(); ++line_number) {
    const size_t end = std::min(text.find('\n', start), text.size());
    on_line(text.substr(start, end - start), line_number);
    start = end + 1;
  }
}

bool parse_number(std::string_view field, size_t& value) {
  const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
  return error == std::errc() && end == field.data() + field.size();
}

}  // namespace

WordNet::WordNet(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) {
    throw InputError("WordNet folder " + dir.string() + " not found (install the Debian package wordnet-base)");
  }
  for (size_t pos = 0; pos < kPosCount; ++pos) {
    read_index(dir, pos);
    read_exceptions(dir, pos);
  }
}

std::vector<uint32_t> WordNet::synsets(std::string_view word) const {
  std::vector<uint32_t> ids;
  for (size_t pos = 0; pos < kPosCount; ++pos) {
    for (const Lemma* lemma : base_lemmas(word, pos)) {
      const auto first = synset_ids_.begin() + lemma->synset_begin;
      ids.insert(ids.end(), first, first + lemma->synset_count);
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

const WordNet::Lemma* WordNet::find(std::string_view lemma, size_t pos) const {
  const auto& list = lemmas_[pos];
  const auto it = std::lower_bound(list.begin(), list.end(), lemma,
                                   [this](const Lemma& l, std::string_view key) { return text_of(l) < key; });
  return it != list.end() && text_of(*it) == lemma ? &*it : nullptr;
}

// morphy: the exception list's base forms when the word is listed there, otherwise the word and
// one application of each detachment rule; only forms the index knows are kept.
std::vector<const WordNet::Lemma*> WordNet::base_lemmas(std::string_view word, size_t pos) const {
  std::vector<const Lemma*> found;
  const auto add = [&](std::string_view form) {
    const Lemma* lemma = find(form, pos);
    if (lemma != nullptr && std::find(found.begin(), found.end(), lemma) == found.end()) found.push_back(lemma);
  };
  add(word);
  const auto& exceptions = exceptions_[pos];
  if (const auto it = exceptions.find(std::string(word)); it != exceptions.end()) {
    for (const auto& base : it->second) add(base);
    return found;
  }
  for (const auto& rule : kDetachments[pos]) {
    if (word.size() > rule.suffix.size() && word.ends_with(rule.suffix)) {
      add(std::string(word.substr(0, word.size() - rule.suffix.size())) + std::string(rule.ending));
    }
  }
  return found;
}

// index.<pos> line: lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt offset...
// A synset is stored as its data-file offset with the part of speech in the top bits.
void WordNet::read_index(const std::filesystem::path& dir, size_t pos) {
  const std::string name = "index." + std::string(kPosNames[pos]);
  const std::string text = read_wordnet_file(dir, name);
  auto& list = lemmas_[pos];
  for_each_line(text, [&](std::string_view line, size_t line_number) {
    if (line.empty() || line[0] == ' ') return;  // the licence header
    const auto fields = split_spaces(line);
    size_t synsets = 0, pointers = 0;
    bool ok = fields.size() >= 4 && parse_number(fields[2], synsets) && parse_number(fields[3], pointers) &&
              fields.size() == 6 + pointers + synsets && fields[0].size() <= UINT16_MAX && synsets <= UINT16_MAX;
    for (size_t k = fields.size() - synsets; ok && k < fields.size(); ++k) {
      size_t offset = 0;
      ok = parse_number(fields[k], offset) && offset < (1u << 28);
      if (ok) synset_ids_.push_back(static_cast<uint32_t>(pos) << 28 | static_cast<uint32_t>(offset));
    }
    if (!ok) throw InputError((dir / name).string() + " line " + std::to_string(line_number) + ": not an index line");
    list.push_back({static_cast<uint32_t>(text_.size()), static_cast<uint32_t>(synset_ids_.size() - synsets),
                    static_cast<uint16_t>(fields[0].size()), static_cast<uint16_t>(synsets)});
    text_ += fields[0];
  });
  if (list.empty()) throw InputError((dir / name).string() + ": no WordNet index entries");
  std::sort(list.begin(), list.end(), [this](const Lemma& a, const Lemma& b) { return text_of(a) < text_of(b); });
}

// <pos>.exc line: inflected_form base_form...
void WordNet::read_exceptions(const std::filesystem::path& dir, size_t pos) {
  const std::string text = read_wordnet_file(dir, std::string(kPosNames[pos]) + ".exc");
  auto& exceptions = exceptions_[pos];
  for_each_line(text, [&](std::string_view line, size_t) {
    const auto fields = split_spaces(line);
    if (fields.size() < 2) return;
    auto& bases = exceptions[std::string(fields[0])];
    for (size_t k = 1; k < fields.size(); ++k) bases.emplace_back(fields[k]);
  });
}

}  // namespace drivevqa
