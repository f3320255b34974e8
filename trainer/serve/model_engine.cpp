#include "trainer/serve/model_engine.h"

#include <random>
#include <stdexcept>

#include "modules/generate.h"
#include "trainer/serve/text_stream.h"

namespace bmos::serve {

namespace {

class ModelEngine : public Engine {
 public:
  ModelEngine(LoadedModel model, std::unique_ptr<Tokenizer> tok, std::string name)
      : model_(std::move(model)), tok_(std::move(tok)), name_(std::move(name)) {
    if (tok_->vocab_size() != model_.model->config.vocab_size)
      throw std::invalid_argument("tokenizer " + tok_->path() + " has " + std::to_string(tok_->vocab_size()) +
                                  " pieces but the model has a vocabulary of " +
                                  std::to_string(model_.model->config.vocab_size) + ": pass the model's --tokenizer");
  }

  std::string model_name() const override { return name_; }

  std::optional<RequestError> check(const CompletionRequest& r) const override {
    const int64_t context = model_.model->config.max_seq_len;
    const int64_t p = int64_t(prompt_ids(r.prompt).size());
    if (p > context)
      return RequestError{400, "the prompt is " + std::to_string(p) + " tokens (BOS included) but the model's context "
                               "is " + std::to_string(context), "prompt"};
    // llama2.c's loop runs positions 0..steps-1 and samples once more, so max_tokens take p + max_tokens - 1 of them.
    if (r.max_tokens > context - p + 1)
      return RequestError{400, "max_tokens " + std::to_string(r.max_tokens) + " does not fit: the prompt takes " +
                               std::to_string(p) + " of the model's " + std::to_string(context) +
                               " positions, so at most " + std::to_string(context - p + 1) + " tokens can follow",
                          "max_tokens"};
    return std::nullopt;
  }

  CompletionResult complete(const CompletionRequest& r,
                            const std::function<bool(const std::string&)>& on_delta) override {
    const std::vector<int32_t> prompt = prompt_ids(r.prompt);
    GenerateOptions opt;
    opt.steps = int64_t(prompt.size()) + r.max_tokens - 1;
    opt.temperature = r.temperature;
    opt.top_p = r.top_p;
    opt.seed = r.seed ? *r.seed : std::random_device{}();
    CompletionResult out;
    out.prompt_tokens = int64_t(prompt.size());
    TextStream text(r.stop);
    bool wanted = true;
    const auto send = [&](const std::string& delta) {
      if (delta.empty()) return;
      out.text += delta;
      wanted = on_delta(delta) && wanted;
    };
    int64_t calls = 0;
    generate_until(model_.model, prompt, opt, [&](int32_t prev, int32_t next) {
      if (++calls < int64_t(prompt.size())) return true;  // the prompt's own tokens come first
      ++out.completion_tokens;
      send(text.push(tok_->decode_piece(prev, next)));
      return wanted && !text.stopped();
    });
    send(text.finish());
    out.finish_reason = text.stopped() || out.completion_tokens < r.max_tokens ? "stop" : "length";
    return out;
  }

 private:
  std::vector<int32_t> prompt_ids(const std::string& prompt) const {
    return encode_with(*tok_, prompt, /*add_bos=*/true, /*add_eos=*/false);
  }

  LoadedModel model_;
  std::unique_ptr<Tokenizer> tok_;  // const use only: encode from request threads, decode_piece from the worker
  std::string name_;
};

}  // namespace

std::unique_ptr<Engine> make_model_engine(LoadedModel model, std::unique_ptr<Tokenizer> tokenizer, std::string name) {
  return std::make_unique<ModelEngine>(std::move(model), std::move(tokenizer), std::move(name));
}

}  // namespace bmos::serve
