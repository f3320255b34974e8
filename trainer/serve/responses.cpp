#include "trainer/serve/responses.h"

#include <nlohmann/json.hpp>

namespace bmos::serve {

namespace {

using nlohmann::json;

// Text cut mid-character (a completion that ends on half a UTF-8 sequence) goes out as U+FFFD, never as bad JSON.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json choice(const std::string& text, const std::string& finish_reason) {
  return {{"text", text}, {"index", 0}, {"logprobs", nullptr},
          {"finish_reason", finish_reason.empty() ? json(nullptr) : json(finish_reason)}};
}

}  // namespace

std::string completion_json(const CompletionId& id, const CompletionResult& r) {
  const json usage = {{"prompt_tokens", r.prompt_tokens}, {"completion_tokens", r.completion_tokens},
                      {"total_tokens", r.prompt_tokens + r.completion_tokens}};
  return dump({{"id", id.id}, {"object", "text_completion"}, {"created", id.created}, {"model", id.model},
               {"choices", json::array({choice(r.text, r.finish_reason)})}, {"usage", usage}});
}

std::string chunk_json(const CompletionId& id, const std::string& delta, const std::string& finish_reason) {
  return dump({{"id", id.id}, {"object", "text_completion"}, {"created", id.created}, {"model", id.model},
               {"choices", json::array({choice(delta, finish_reason)})}});
}

std::string sse_event(const std::string& data) {
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t nl = data.find('\n', start);
    out += "data: " + data.substr(start, nl == std::string::npos ? std::string::npos : nl - start) + "\n";
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out + "\n";
}

}  // namespace bmos::serve
