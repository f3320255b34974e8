#include "trainer/checkpoint/optimizer_state.h"

#include <map>
#include <memory>
#include <set>
#include <stdexcept>

#include "modules/io/safetensors.h"
#include "modules/torch_compat.h"

namespace bmos {

namespace {

using Key = compat::OptimizerStateKey;
Key key_of(const torch::Tensor& p) { return compat::optimizer_state_key(p); }

// The parameters `optimizer` holds (its param groups), by identity.
std::set<Key> held(torch::optim::AdamW& optimizer) {
  std::set<Key> keys;
  for (auto& g : optimizer.param_groups())
    for (auto& p : g.params()) keys.insert(key_of(p));
  return keys;
}

}  // namespace

void save_adamw_state(const std::string& path, torch::optim::AdamW& optimizer, const NamedParams& params) {
  std::vector<SafetensorsEntry> entries;
  auto& state = optimizer.state();
  for (const auto& [name, p] : params) {
    auto it = state.find(key_of(p));
    if (it == state.end()) continue;
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    entries.push_back({name + "/exp_avg", s.exp_avg().detach().to(torch::kCPU).contiguous(), ""});
    entries.push_back({name + "/exp_avg_sq", s.exp_avg_sq().detach().to(torch::kCPU).contiguous(), ""});
    entries.push_back({name + "/step", torch::tensor({s.step()}, torch::kInt64), ""});
  }
  write_safetensors(path, entries, {{"format", "bmos-adamw-state"}});
}

void load_adamw_state(const std::vector<std::string>& files, torch::optim::AdamW& optimizer, const NamedParams& params) {
  std::vector<std::unique_ptr<SafetensorsFile>> opened;
  std::map<std::string, const SafetensorsFile*> where;  // "<name>/exp_avg" -> file
  for (const auto& f : files) {
    opened.push_back(std::make_unique<SafetensorsFile>(f));
    for (const auto& n : opened.back()->names()) where[n] = opened.back().get();
  }
  const std::set<Key> mine = held(optimizer);
  auto& state = optimizer.state();
  torch::NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    if (!mine.count(key_of(p))) continue;
    for (const char* part : {"/exp_avg", "/exp_avg_sq", "/step"})
      if (!where.count(name + part)) {
        std::string list;
        for (const auto& f : files) list += (list.empty() ? "" : ", ") + f;
        throw std::runtime_error("optimiser state: no '" + name + part + "' in " + list);
      }
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    const torch::Tensor m = where[name + "/exp_avg"]->load(name + "/exp_avg");
    if (m.sizes() != p.sizes())
      throw std::runtime_error("optimiser state of '" + name + "' has another shape than the parameter");
    s->exp_avg(m.to(p.device()));
    s->exp_avg_sq(where[name + "/exp_avg_sq"]->load(name + "/exp_avg_sq").to(p.device()));
    s->step(where[name + "/step"]->load(name + "/step").item<int64_t>());
    state[key_of(p)] = std::move(s);
  }
}

}  // namespace bmos
