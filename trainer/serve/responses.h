// The JSON bodies and the server-sent-event framing of OpenAI's completions API (no torch, no HTTP).
#pragma once

#include <cstdint>
#include <string>

namespace bmos::serve {

// One finished completion, as the engine reports it.
struct CompletionResult {
  std::string text;           // the generated text, prompt excluded, cut before any stop string
  std::string finish_reason;  // "stop" (a stop string, or the model's EOS/BOS) | "length" (max_tokens reached)
  int64_t prompt_tokens = 0;  // BOS included: the positions the prompt takes
  int64_t completion_tokens = 0;
};

// What every body of one completion shares.
struct CompletionId {
  std::string id;       // "cmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
};

// {"id","object":"text_completion","created","model","choices":[{"text","index":0,"logprobs":null,
//  "finish_reason"}],"usage":{"prompt_tokens","completion_tokens","total_tokens"}}
std::string completion_json(const CompletionId& id, const CompletionResult& result);
// One streamed chunk: choices[0].text is the delta; finish_reason is null ("") until the last chunk.
std::string chunk_json(const CompletionId& id, const std::string& delta, const std::string& finish_reason = "");
// One event: each line of `data` behind "data: ", then the blank line that ends the event.
std::string sse_event(const std::string& data);
// The event that ends every stream.
inline const char* const kSseDone = "data: [DONE]\n\n";

}  // namespace bmos::serve
