// The server side of bench/throughput.sh and bench/serve_load.sh: sends the items of a drivevqa run
// to a running server in input order from N concurrent clients, times them, and compares the
// server's answers with the run's.
//   llama-server (default): the run's exact prompts to /completion, with the images exactly as
//     drivevqa hands them to the engine (resized to the Qwen target size, as lossless PNG), and the
//     same answer grammar and budget per question.
//   drivevqa serve (--openai): what a user's client sends to /v1/chat/completions: the question,
//     its category and the six camera JPEGs as data: URIs, greedy; the server builds the prompt.
// Requests are prepared before the clock starts.
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "engine/image_resize.h"
#include "prompt/answer_shape.h"
#include "prompt/chat_prompt.h"
#include "prompt/prompt_file.h"
#include "prompt/task_prompts.h"
#include "route/route.h"
#include "serve/chat_request.h"
#include "util/atomic_file.h"
#include "util/files.h"
#include "util/text.h"

namespace {


// As the results file stores text: invalid UTF-8 replaced.
std::string as_stored(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json read_json(const std::filesystem::path& path) {
  return drivevqa::parse_json(drivevqa::read_text_file(path), path.string());
}

// The comparison table of one model from the four runs' JSON files in `dir`:
// a.json / b.json (drivevqa --stats_json), c.json / d.json (this program's --out, with encodes added).
std::string stage_entry(const std::string& stage, double seconds) {
  char text[96];
  std::snprintf(text, sizeof text, " %s %.1f", stage.c_str(), seconds);
  return text;
}

// What a user's client sends drivevqa serve for one item: the question, its category and the six
// camera JPEGs as they are on disk, greedy (the server builds the prompt and the answer's shape).
nlohmann::json chat_request(const nlohmann::json& item, const std::string& image_base_dir) {
  nlohmann::json content = nlohmann::json::array({{{"type", "text"}, {"text", item["question"]}}});
  for (std::string_view cam : drivevqa::kCameraOrder) {
    const std::string key(cam);
    if (!item["img_paths"].contains(key)) continue;
    const std::string url = "data:image/jpeg;base64," +
                            drivevqa::encode_base64(drivevqa::read_file_bytes(image_base_dir + "/" + item["img_paths"][key].get<std::string>()));
    content.push_back({{"type", "image_url"}, {"image_url", {{"url", url}}}});
  }
  return {{"model", "drivevqa"},
          {"category", item.value("category", "")},
          {"temperature", 0},
          {"messages", nlohmann::json::array({{{"role", "user"}, {"content", content}}})}};
}

// A counter of drivevqa serve's /metrics text (0 when absent).
double metric_value(const std::string& metrics, const std::string& name) {
  const size_t at = metrics.find("\n" + name + " ");
  return at == std::string::npos ? 0.0 : std::strtod(metrics.c_str() + at + name.size() + 2, nullptr);
}

// bench/serve_load.sh's table: a (drivevqa run), s (drivevqa serve, 8 clients), d (llama-server, 4 slots, 8 clients).
void print_serve_table(const std::filesystem::path& dir, const std::string& title) {
  const nlohmann::json a = read_json(dir / "a.json"), s = read_json(dir / "s.json"), d = read_json(dir / "d.json");
  const auto qps = [](const nlohmann::json& j) { return j.value("questions_per_second", 0.0); };
  const auto questions = [](const nlohmann::json& j) {
    return j.contains("answered_now") ? j["answered_now"].get<size_t>() : j["questions"].get<size_t>();
  };
  std::printf("\n%s\n", title.c_str());
  // Decode steps: batches of questions; where answers run longer than others, fewer questions per
  // step means more steps for the same answers.
  std::printf("%-44s %10s %12s %14s %12s %10s\n", "", "questions", "questions/s", "image encodes", "decode steps", "seconds");
  std::printf("%-44s %10zu %12.3f %14zu %12zu %10.1f\n", "a  drivevqa run", questions(a), qps(a), a.value("images_encoded", size_t{0}),
              a.value("decode_calls", size_t{0}), a.value("seconds", 0.0));
  std::printf("%-44s %10zu %12.3f %14zu %12zu %10.1f\n", "s  drivevqa serve, 8 clients", questions(s), qps(s),
              s.value("images_encoded", size_t{0}), s.value("decode_calls", size_t{0}), s.value("seconds", 0.0));
  std::printf("%-44s %10zu %12.3f %14s %12s %10.1f\n", "d  llama-server, 4 slots, 8 clients", questions(d), qps(d), "-", "-",
              d.value("seconds", 0.0));
  std::printf("s/a %.2fx   s/d %.1fx   serve: failed requests %zu, 429 replies %zu, prefix-cache hits %zu, "
              "prefix evaluations %zu, rounds %zu, requests joining a round under way %zu; answers identical to run's: %zu of %zu\n",
              qps(s) / qps(a), qps(s) / qps(d), s.value("failed_requests", size_t{0}), s.value("busy_replies", size_t{0}),
              s.value("prefix_cache_hits", size_t{0}), s.value("prefix_evaluations", size_t{0}), s.value("rounds", size_t{0}),
              s.value("joined", size_t{0}), s.value("identical_answers", size_t{0}), questions(s));
}

void print_table(const std::filesystem::path& dir, const std::string& title) {
  struct Row {
    const char* name;
    nlohmann::json j;
  };
  const Row rows[] = {{"a  drivevqa (default)", read_json(dir / "a.json")},
                      {"b  drivevqa, the seed's algorithm", read_json(dir / "b.json")},
                      {"c  llama-server, 1 slot", read_json(dir / "c.json")},
                      {"d  llama-server, 4 slots, 4 clients", read_json(dir / "d.json")}};
  const auto qps = [](const nlohmann::json& j) { return j.value("questions_per_second", 0.0); };
  const auto questions = [](const nlohmann::json& j) {
    return j.contains("answered_now") ? j["answered_now"].get<size_t>() : j["questions"].get<size_t>();
  };
  std::printf("\n%s\n", title.c_str());
  std::printf("%-38s %10s %12s %14s %10s\n", "run", "questions", "questions/s", "image encodes", "seconds");
  for (const Row& r : rows) {
    std::printf("%-38s %10zu %12.3f %14zu %10.1f\n", r.name, questions(r.j), qps(r.j), r.j.value("images_encoded", size_t{0}),
                r.j.value("seconds", 0.0));
  }
  const double a = qps(rows[0].j);
  std::printf("a/b %.1fx   a/c %.1fx   a/d %.1fx   identical answers a vs c: %zu of %zu\n", a / qps(rows[1].j),
              a / qps(rows[2].j), a / qps(rows[3].j), rows[2].j.value("identical_answers", size_t{0}), questions(rows[2].j));
  // Where a's time goes, by stage (--stats_json).
  std::string stages;
  const nlohmann::json stage_seconds = rows[0].j.value("stage_seconds", nlohmann::json::object());
  for (const auto& [stage, seconds] : stage_seconds.items()) {
    if (seconds.is_number()) stages += stage_entry(stage, seconds.get<double>());
  }
  std::printf("a's stages (s):%s\n", stages.c_str());
  if (std::filesystem::exists(dir / "e.json")) {
    // The answer grammar's cost: measured inside a (time in grammar checks) and as a vs e (the same
    // prompts without the grammar; the random model's unconstrained answers run longer).
    const nlohmann::json e = read_json(dir / "e.json");
    const double grammar = rows[0].j["stage_seconds"].value("grammar", 0.0);
    const double seconds = rows[0].j.value("seconds", 0.0);
    std::printf("%-38s %10zu %12.3f %14zu %10.1f\n", "e  drivevqa, shapes without grammar", questions(e), qps(e),
                e.value("images_encoded", size_t{0}), e.value("seconds", 0.0));
    std::printf("answer grammar: %.2f s of a's %.1f s (%.1f%%); a %.1f s with %zu generated tokens, e %.1f s with %zu\n",
                grammar, seconds, 100.0 * grammar / std::max(seconds, 1e-9), seconds,
                rows[0].j.value("generated_tokens", size_t{0}), e.value("seconds", 0.0), e.value("generated_tokens", size_t{0}));
  }
  // The techniques of the best Track 1 teams, each a's workload with one option on: their time
  // relative to a, and what they add (prefixes and their tokens, close-up tokens, marked images,
  // question tokens).
  const struct {
    const char* file;
    const char* name;
  } techniques[] = {{"f.json", "f  drivevqa --object_crops"},
                    {"g.json", "g  drivevqa --history_frames 2"},
                    {"h.json", "h  drivevqa --draw_markers"},
                    {"i.json", "i  drivevqa --self_consistency 5"},
                    {"j.json", "j  drivevqa --few_shot 3"}};
  for (const auto& t : techniques) {
    if (!std::filesystem::exists(dir / t.file)) continue;
    const nlohmann::json j = read_json(dir / t.file);
    std::printf("%-38s %10zu %12.3f %14zu %10.1f   %.2fx a's time; prefixes %zu (a %zu), prefix tokens %zu (a %zu), "
                "close-up tokens %zu, marked images %zu, generated tokens %zu (a %zu), forked answers %zu, "
                "question tokens %zu (a %zu)\n",
                t.name, questions(j), qps(j), j.value("images_encoded", size_t{0}), j.value("seconds", 0.0),
                j.value("seconds", 0.0) / std::max(rows[0].j.value("seconds", 0.0), 1e-9),
                j.value("prefix_evaluations", size_t{0}), rows[0].j.value("prefix_evaluations", size_t{0}),
                j.value("prefix_tokens", size_t{0}), rows[0].j.value("prefix_tokens", size_t{0}),
                j.value("close_up_tokens", size_t{0}), j.value("marked_images", size_t{0}),
                j.value("generated_tokens", size_t{0}), rows[0].j.value("generated_tokens", size_t{0}),
                j.value("forked_answers", size_t{0}), j.value("suffix_tokens", size_t{0}),
                rows[0].j.value("suffix_tokens", size_t{0}));
  }
  // LoRA adapters (rows k-m): the prefix stage of each, against the base model's.
  if (std::filesystem::exists(dir / "k.json")) {
    const nlohmann::json k = read_json(dir / "k.json");
    const double base = k["stage_seconds"].value("prefixes", 0.0);
    const struct {
      const char* file;
      const char* name;
    } adapters[] = {{"k.json", "k  drivevqa, base from a HF folder"},
                    {"l.json", "l  k + LoRA, --lora_mode merged"},
                    {"m.json", "m  k + LoRA, --lora_mode runtime"}};
    for (const auto& r : adapters) {
      if (!std::filesystem::exists(dir / r.file)) continue;
      const nlohmann::json j = read_json(dir / r.file);
      const double prefixes = j["stage_seconds"].value("prefixes", 0.0);
      std::printf("%-38s %10zu %12.3f %14zu %10.1f   prefixes %.2f s (%.3fx k's)\n", r.name, questions(j), qps(j),
                  j.value("images_encoded", size_t{0}), j.value("seconds", 0.0), prefixes, prefixes / std::max(base, 1e-9));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace drivevqa;
  CLI::App app{"Send a drivevqa run's prompts to llama-server and time the answers"};
  std::string host = "127.0.0.1", prompts_dir, results_file, image_base_dir, out_file;
  int port = 8080, clients = 1, max_new_tokens_default = 512, wait_seconds = 300;
  size_t limit = 0;
  std::string table_dir, title;
  int64_t max_pixels = ImageSizing{}.max_pixels;
  app.add_option("--port", port);
  app.add_option("--prompts", prompts_dir, "The run's --dump_prompts folder");
  app.add_option("--results", results_file, "The run's results file (image paths, subtasks, answers)");
  app.add_option("--image_base_dir", image_base_dir);
  app.add_option("--table", table_dir, "Print the table from a.json, b.json, c.json and d.json in this folder, and exit");
  app.add_option("--title", title, "The table's title");
  app.add_option("--max_pixels", max_pixels);
  app.add_option("--clients", clients, "Concurrent clients");
  app.add_option("--limit", limit, "Only the first N items");
  app.add_option("--max_new_tokens_default", max_new_tokens_default);
  std::string prompts_file;
  app.add_option("--prompts_file", prompts_file, "The run's --prompts file (its token budgets apply here too)");
  bool openai = false;
  app.add_flag("--openai", openai, "Send OpenAI chat requests (drivevqa serve) instead of llama-server prompts");
  std::string serve_table;
  app.add_option("--serve_table", serve_table, "Print bench/serve_load.sh's table from a.json, s.json and d.json in this folder, and exit");
  app.add_option("--wait", wait_seconds, "Seconds to wait for the server to come up");
  app.add_option("--out", out_file, "Write the timing and answers as JSON");
  CLI11_PARSE(app, argc, argv);
  if (!table_dir.empty()) {
    print_table(table_dir, title);
    return 0;
  }
  if (!serve_table.empty()) {
    print_serve_table(serve_table, title);
    return 0;
  }
  if ((prompts_dir.empty() && !openai) || results_file.empty() || image_base_dir.empty()) {
    std::fprintf(stderr, "--prompts (unless --openai), --results and --image_base_dir are needed\n");
    return 2;
  }

  const auto results = parse_json(read_text_file(results_file), results_file);
  const size_t n = limit ? std::min(limit, results.size()) : results.size();
  ImageSizing sizing;
  sizing.max_pixels = max_pixels;
  PromptSet prompts = default_prompts(max_new_tokens_default);
  if (!prompts_file.empty()) apply_prompts_file(prompts_file, prompts);

  // Requests, prepared before timing: the same images drivevqa used, as PNG.
  std::map<std::string, std::string> png_of;
  std::vector<std::string> bodies(n);
  for (size_t i = 0; i < n && openai; ++i) bodies[i] = chat_request(results[i], image_base_dir).dump();
  for (size_t i = 0; i < n && !openai; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.txt", i);
    nlohmann::json media = nlohmann::json::array();
    for (std::string_view cam : kCameraOrder) {
      const std::string key(cam);
      if (!results[i]["img_paths"].contains(key)) continue;
      const std::string path = image_base_dir + "/" + results[i]["img_paths"][key].get<std::string>();
      auto [it, added] = png_of.emplace(path, "");
      if (added) it->second = drivevqa::encode_base64(encode_png(load_image_file(path, &sizing)));
      media.push_back(it->second);
    }
    const Subtask subtask = subtask_from_name(results[i]["subtask"].get<std::string>());
    nlohmann::json body;
    body["prompt"] = {{"prompt_string", read_text_file(std::filesystem::path(prompts_dir) / name)}, {"multimodal_data", media}};
    // The answer shapes of drivevqa's default run: the same grammar and the same budget per question.
    const AnswerShape shape = answer_shape(subtask, results[i]["question"].get<std::string>());
    int budget = token_budget(prompts, subtask);
    if (const int cap = answer_token_cap(shape, McqFormat::kLetter); cap > 0) budget = std::min(budget, cap);
    body["n_predict"] = budget;
    if (const std::string grammar = answer_grammar(shape, McqFormat::kLetter); !grammar.empty()) body["grammar"] = grammar;
    body["temperature"] = 0.0;  // greedy, as drivevqa's default
    body["top_k"] = 1;
    body["cache_prompt"] = true;
    body["stream"] = false;
    bodies[i] = body.dump();
  }

  httplib::Client probe(host, port);
  for (int t = 0;; ++t) {
    auto r = probe.Get("/health");
    if (r && r->status == 200) break;
    if (t >= wait_seconds * 2) {
      std::fprintf(stderr, "llama-server on port %d did not come up\n", port);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }

  std::vector<std::string> answers(n);
  std::vector<size_t> evaluated(n, 0);  // prompt tokens the server evaluated (not taken from its cache)
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::atomic<size_t> busy_replies{0};  // 429: the client waits a second and sends it again
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      httplib::Client client(host, port);
      client.set_read_timeout(3600, 0);
      for (size_t i = next++; i < n && !failed; i = next++) {
        auto r = client.Post(openai ? "/v1/chat/completions" : "/completion", bodies[i], "application/json");
        while (r && r->status == 429) {
          ++busy_replies;
          std::this_thread::sleep_for(std::chrono::seconds(1));
          r = client.Post("/v1/chat/completions", bodies[i], "application/json");
        }
        if (!r || r->status != 200) {
          std::fprintf(stderr, "item %zu: request failed (%s)\n", i, r ? r->body.c_str() : "no response");
          failed = true;
          return;
        }
        const std::optional<nlohmann::json> reply = drivevqa::try_parse_json(r->body);
        if (!reply || !reply->is_object()) {
          std::fprintf(stderr, "item %zu: the reply is not a JSON object (or nests too deep)\n", i);
          failed = true;
          return;
        }
        if (openai) {
          answers[i] = (*reply)["choices"][0]["message"].value("content", "");
          const nlohmann::json& usage = (*reply)["usage"];
          evaluated[i] = usage.value("prompt_tokens", size_t{0}) - usage["prompt_tokens_details"].value("cached_tokens", size_t{0});
          continue;
        }
        answers[i] = reply->value("content", "");
        if (reply->contains("timings")) evaluated[i] = (*reply)["timings"].value("prompt_n", size_t{0});
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failed) return 1;

  // The server does not report image encodes; a request whose evaluated part is longer than its
  // question text (some hundred tokens) went through its images again.
  size_t encodes = 0;
  for (size_t i = 0; i < n && !openai; ++i) {
    const size_t images = drivevqa::parse_json(bodies[i], "request body")["prompt"]["multimodal_data"].size();
    encodes += evaluated[i] > 16 * images + 400 ? images : 0;
  }
  size_t identical = 0;
  for (size_t i = 0; i < n; ++i) identical += as_stored(answers[i]) == results[i]["answer"].dump() ? 1 : 0;
  nlohmann::json out;
  out["questions"] = n;
  out["seconds"] = seconds;
  out["questions_per_second"] = static_cast<double>(n) / seconds;
  out["identical_answers"] = identical;
  out["images_encoded"] = encodes;
  out["busy_replies"] = busy_replies.load();
  if (openai) {  // what the server counted
    auto m = probe.Get("/metrics");
    const std::string metrics = m && m->status == 200 ? m->body : "";
    out["images_encoded"] = static_cast<size_t>(metric_value(metrics, "drivevqa_images_encoded_total"));
    out["prefix_cache_hits"] = static_cast<size_t>(metric_value(metrics, "drivevqa_prefix_cache_hits_total"));
    out["prefix_evaluations"] = static_cast<size_t>(metric_value(metrics, "drivevqa_prefix_evaluations_total"));
    out["decode_calls"] = static_cast<size_t>(metric_value(metrics, "drivevqa_decode_calls_total"));
    out["rounds"] = static_cast<size_t>(metric_value(metrics, "drivevqa_rounds_total"));
    out["joined"] = static_cast<size_t>(metric_value(metrics, "drivevqa_joined_requests_total"));
    out["failed_requests"] = static_cast<size_t>(metric_value(metrics, "drivevqa_failed_total"));
    out["metrics"] = metrics;
  }
  out["answers"] = answers;
  std::printf("%zu questions in %.1f s (%.3f q/s), %zu answers identical to drivevqa's\n", n, seconds,
              static_cast<double>(n) / seconds, identical);
  if (!out_file.empty()) write_file_atomic(out_file, out.dump(1, ' ', false, nlohmann::json::error_handler_t::replace));
  return 0;
}
