// The body of a POST /v1/completions to bmos serve (trainer/serve/request.h): any bytes from the network. The parser
// never throws (found: a number like 1e3083 threw json's out_of_range past the parse_error handler). A body it
// refuses must come back as an error naming a field or the body, whose OpenAI error JSON is valid JSON; one it
// accepts must hold the ranges the parser promises.
#include <cmath>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/fuzz/fuzz_target.h"
#include "trainer/serve/request.h"

BMOS_FUZZ_TARGET(serve_request) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  bmos::serve::ParsedRequest parsed;
  try {
    parsed = bmos::serve::parse_completion_request(body);
  } catch (const std::exception&) {  // it must answer with an error, never throw (the server would say 500)
    throw "serve_request: parse_completion_request threw instead of returning a 400";
  }
  if (!parsed.request) {
    if (parsed.error.message.empty() || parsed.error.status < 400 || parsed.error.status > 499)
      throw "serve_request: a refusal without a message or a 4xx status";  // not a std::exception: a finding
    const auto e = nlohmann::json::parse(bmos::serve::error_json(parsed.error.message, "invalid_request_error",
                                                                 parsed.error.param));
    if (!e.contains("error")) throw "serve_request: error_json without 'error'";
    return 0;
  }
  const bmos::serve::CompletionRequest& r = *parsed.request;
  if (r.max_tokens < 1 || !(r.temperature >= 0) || !std::isfinite(r.temperature) || !(r.top_p > 0 && r.top_p <= 1) ||
      r.stop.size() > 4)
    throw "serve_request: an accepted request out of range";
  for (const auto& s : r.stop)
    if (s.empty()) throw "serve_request: an accepted empty stop string";
  return 0;
}
