#include "metrics.hpp"

#include <cstdio>

namespace bitrun::http {
namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, double value,
            const std::string& labels = {}) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  out += name;
  out += labels;
  char buf[64];
  std::snprintf(buf, sizeof buf, " %.17g\n", value);
  out += buf;
}

// A label value with Prometheus' escapes.
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// A histogram of seconds: _bucket{le=...} (cumulative, +Inf last), _sum and _count, each with the model label.
void histogram(std::string& out, const char* name, const char* help, const Histogram& h, const std::string& model) {
  out += std::string("# HELP ") + name + ' ' + help + "\n# TYPE " + name + " histogram\n";
  char buf[64];
  for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
    if (i < h.bounds().size()) std::snprintf(buf, sizeof buf, "%g", h.bounds()[i]);
    const std::uint64_t n = i < h.bounds().size() ? h.cumulative(i) : h.count();
    out += std::string(name) + "_bucket{" + model + ",le=\"" + (i < h.bounds().size() ? buf : "+Inf") + "\"} " +
           std::to_string(n) + "\n";
  }
  std::snprintf(buf, sizeof buf, "%.17g", h.sum());
  out += std::string(name) + "_sum{" + model + "} " + buf + "\n";
  out += std::string(name) + "_count{" + model + "} " + std::to_string(h.count()) + "\n";
}

}  // namespace

void HttpCounters::count(int status) {
  std::lock_guard lock(mu_);
  ++by_status_[status];
}

std::map<int, std::uint64_t> HttpCounters::snapshot() const {
  std::lock_guard lock(mu_);
  return by_status_;
}

std::string render_metrics(const SchedulerStats& s, const std::map<int, std::uint64_t>& http,
                           std::uint64_t dropped_connections, const std::string& model_id) {
  std::string out;
  const std::string model = "{model=\"" + label(model_id) + "\"}";
  metric(out, "bitrun_requests_running", "gauge", "Requests being decoded now.", double(s.running), model);
  metric(out, "bitrun_requests_waiting", "gauge", "Requests waiting for a decoding slot.", double(s.waiting), model);
  metric(out, "bitrun_requests_submitted_total", "counter", "Requests admitted to the scheduler.",
         double(s.submitted), model);
  metric(out, "bitrun_requests_rejected_total", "counter", "Requests refused because the queue was full (429).",
         double(s.rejected), model);
  metric(out, "bitrun_requests_finished_total", "counter", "Requests that ran to their end.", double(s.finished),
         model);
  metric(out, "bitrun_requests_cancelled_total", "counter",
         "Requests cancelled (client gone, timeout, shutdown).", double(s.cancelled), model);
  metric(out, "bitrun_requests_failed_total", "counter", "Requests ended by an engine error.", double(s.failed),
         model);
  metric(out, "bitrun_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.",
         double(s.prompt_tokens), model);
  metric(out, "bitrun_prompt_tokens_reused_total", "counter", "Prompt positions copied from the prefix pool.",
         double(s.reused_prompt_tokens), model);
  metric(out, "bitrun_generated_tokens_total", "counter", "Tokens generated.", double(s.generated_tokens), model);
  metric(out, "bitrun_decode_steps_total", "counter", "Engine steps (one merged forward each).", double(s.steps),
         model);
  metric(out, "bitrun_busy_seconds_total", "counter", "Time spent in engine steps.", s.busy_seconds, model);
  metric(out, "bitrun_tokens_per_second", "gauge", "Tokens generated per second over the last 10 s.",
         s.recent_tokens_per_second, model);
  const std::string model_label = "model=\"" + label(model_id) + "\"";
  histogram(out, "bitrun_time_to_first_token_seconds", "Seconds from admission to a request's first token.",
            s.time_to_first_token, model_label);
  histogram(out, "bitrun_queue_wait_seconds", "Seconds a request waited for a decoding slot.", s.queue_wait,
            model_label);
  histogram(out, "bitrun_request_duration_seconds", "Seconds from admission to a request's end.", s.request_duration,
            model_label);
  out += "# HELP bitrun_http_responses_total HTTP responses by status code.\n"
         "# TYPE bitrun_http_responses_total counter\n";
  for (const auto& [status, n] : http)
    out += "bitrun_http_responses_total{code=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
  out += "# HELP bitrun_http_connections_dropped_total Connections closed because their request did not arrive "
         "within server.request_read_timeout_s.\n"
         "# TYPE bitrun_http_connections_dropped_total counter\n"
         "bitrun_http_connections_dropped_total " +
         std::to_string(dropped_connections) + "\n";
  return out;
}

}  // namespace bitrun::http
