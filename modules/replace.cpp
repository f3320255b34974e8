#include "modules/replace.h"

#include <sstream>
#include <stdexcept>

#include "modules/binarymos_linear.h"
#include "modules/sign_linear.h"

namespace bmos {

int64_t count_params(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

namespace {

// Glob match where '*' matches any run of characters other than '.'.
bool glob(const char* p, const char* s) {
  if (*p == '\0') return *s == '\0';
  if (*p == '*') {
    for (const char* t = s;; ++t) {
      if (glob(p + 1, t)) return true;
      if (*t == '\0' || *t == '.') return false;
    }
  }
  return *p == *s && glob(p + 1, s + 1);
}

}  // namespace

bool pattern_matches(const std::string& pattern, const std::string& name) { return glob(pattern.c_str(), name.c_str()); }

std::string ReplaceReport::summary() const {
  std::ostringstream s;
  s << "replaced " << replaced.size() << " linear layers";
  if (!replaced.empty()) s << " (" << replaced.front() << " ... " << replaced.back() << ")";
  s << "; parameters " << params_before << " -> " << params_after;
  return s.str();
}

ReplaceReport replace_linears(Llama& model, const QuantSpec& spec, bool init_from_fp) {
  ReplaceReport report;
  report.params_before = count_params(*model);
  if (spec.method == "none") {
    report.params_after = report.params_before;
    return report;
  }
  if (spec.method != "binarymos" && spec.method != "sign")
    throw std::invalid_argument("quant.method must be binarymos, sign or none, got '" + spec.method + "'");
  const auto names = model->linear_names();
  for (const auto& pat : spec.patterns) {
    bool any = false;
    for (const auto& n : names) any = any || pattern_matches(pat, n);
    if (!any) {
      throw std::invalid_argument("quant.layers pattern '" + pat + "' matches no decoder linear (names look like '" +
                                  names.front() + "')");
    }
  }
  const ScaleInit init = spec.init == "power" ? ScaleInit::kPower : spec.init == "svd" ? ScaleInit::kSvd : ScaleInit::kAuto;
  for (const auto& n : names) {
    bool match = false;
    for (const auto& pat : spec.patterns) match = match || pattern_matches(pat, n);
    if (!match) continue;
    auto old = model->get_linear(n);
    auto fp = std::dynamic_pointer_cast<FpLinearImpl>(old);
    if (!fp) throw std::invalid_argument("layer '" + n + "' is already " + old->kind() + ", not an FP linear");
    std::shared_ptr<LinearLike> fresh;
    if (spec.method == "binarymos") {
      fresh = init_from_fp ? BinaryMoSLinearImpl::from_linear(fp->weight, fp->bias, spec.experts, init)
                           : std::make_shared<BinaryMoSLinearImpl>(
                                 BinaryMoSLinearOptions(fp->in_features(), fp->out_features())
                                     .experts(spec.experts)
                                     .bias(fp->bias.defined()));
    } else {
      fresh = init_from_fp ? SignLinearImpl::from_linear(fp->weight, fp->bias)
                           : std::make_shared<SignLinearImpl>(fp->in_features(), fp->out_features(),
                                                              fp->bias.defined());
    }
    model->set_linear(n, fresh);
    report.replaced.push_back(n);
  }
  report.params_after = count_params(*model);
  return report;
}

}  // namespace bmos
