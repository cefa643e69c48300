// deploy/: what can be checked without a container runtime or a cluster. The Kubernetes manifests parse and agree
// with the server they run (ports, probes, the config file the pod mounts, the secret's variable, the metric the
// autoscaler reads, grace periods), the kustomizations name files that exist, and the Dockerfile builds with the
// project's own scripts and runs `bitrun serve` as a non-root user.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "bitrun/config/config.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

namespace fs = std::filesystem;
const fs::path kDeploy = fs::path(BITRUN_SOURCE_DIR) / "deploy";
const fs::path kBase = kDeploy / "kubernetes" / "base";
const fs::path kOverlay = kDeploy / "kubernetes" / "overlays" / "bitnet-2b";

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every document of every manifest a kustomization lists, by kind.
std::map<std::string, YAML::Node> manifests(const fs::path& dir) {
  std::map<std::string, YAML::Node> by_kind;
  const YAML::Node k = YAML::LoadFile((dir / "kustomization.yaml").string());
  for (const auto& r : k["resources"]) {
    const fs::path file = dir / r.as<std::string>();
    if (fs::is_directory(file)) continue;
    for (const YAML::Node& doc : YAML::LoadAllFromFile(file.string())) {
      const std::string kind = doc["kind"].as<std::string>();
      EXPECT_FALSE(by_kind.count(kind)) << "two " << kind << " documents";
      by_kind[kind] = doc;
    }
  }
  return by_kind;
}

// The config file a kustomization's configMapGenerator puts in the pod, loaded by bitrun (so an unknown key or a bad
// value fails here, as it would fail the pod).
Config pod_config(const fs::path& dir) {
  const YAML::Node k = YAML::LoadFile((dir / "kustomization.yaml").string());
  const YAML::Node gen = k["configMapGenerator"][0];
  EXPECT_EQ(gen["name"].as<std::string>(), "bitrun-config");
  const std::string file = gen["files"][0].as<std::string>();
  EXPECT_EQ(file, "config.yaml");   // the key, and so the file name under the mount
  Config c = test::plugin_config();
  c.load_file(dir / file);
  return c;
}

// Labels `selector` asks for all on `labels`.
bool selects(const YAML::Node& selector, const YAML::Node& labels) {
  for (const auto& kv : selector)
    if (!labels[kv.first.as<std::string>()] ||
        labels[kv.first.as<std::string>()].as<std::string>() != kv.second.as<std::string>())
      return false;
  return true;
}

TEST(Deploy, KustomizationsNameFilesThatExist) {
  for (const fs::path& dir : {kBase, kOverlay}) {
    const YAML::Node k = YAML::LoadFile((dir / "kustomization.yaml").string());
    for (const auto& r : k["resources"]) EXPECT_TRUE(fs::exists(dir / r.as<std::string>())) << r.as<std::string>();
    for (const auto& g : k["configMapGenerator"])
      for (const auto& f : g["files"]) EXPECT_TRUE(fs::exists(dir / f.as<std::string>())) << f.as<std::string>();
    if (k["patches"]) {
      for (const auto& p : k["patches"]) EXPECT_TRUE(fs::exists(dir / p["path"].as<std::string>()));
    }
  }
  EXPECT_TRUE(fs::exists(kDeploy / "kubernetes" / "prometheus-adapter-rules.yaml"));
}

TEST(Deploy, DeploymentMatchesTheServerItRuns) {
  auto m = manifests(kBase);
  for (const char* kind : {"Deployment", "Service", "Secret", "HorizontalPodAutoscaler", "PodDisruptionBudget"})
    ASSERT_TRUE(m.count(kind)) << kind;
  const Config config = pod_config(kBase);
  const YAML::Node dep = m["Deployment"];
  const YAML::Node pod = dep["spec"]["template"];
  const YAML::Node c = pod["spec"]["containers"][0];

  // The port the config binds, on every address, named for the probes and the Service.
  EXPECT_EQ(config.get_string("server.host"), "0.0.0.0");
  EXPECT_EQ(c["ports"][0]["name"].as<std::string>(), "http");
  EXPECT_EQ(c["ports"][0]["containerPort"].as<std::int64_t>(), config.get_int("server.port"));
  // bitrun reads the mounted config.
  const std::vector<std::string> args = c["args"].as<std::vector<std::string>>();
  ASSERT_EQ(args.size(), 2u);
  EXPECT_EQ(args[0], "--config");
  const std::string mount = c["volumeMounts"][0]["mountPath"].as<std::string>();
  EXPECT_EQ(args[1], mount + "/config.yaml");
  EXPECT_EQ(pod["spec"]["volumes"][0]["configMap"]["name"].as<std::string>(), "bitrun-config");
  // Probes on /health (503 while loading or draining), by the port's name.
  for (const char* probe : {"startupProbe", "readinessProbe", "livenessProbe"}) {
    ASSERT_TRUE(c[probe]) << probe;
    EXPECT_EQ(c[probe]["httpGet"]["path"].as<std::string>(), "/health") << probe;
    EXPECT_EQ(c[probe]["httpGet"]["port"].as<std::string>(), "http") << probe;
  }
  // A graceful stop fits in the pod's grace period, and liveness does not kill a draining server first.
  const std::int64_t grace = config.get_int("server.shutdown_grace_s");
  const std::int64_t pre_stop = std::stoll(c["lifecycle"]["preStop"]["exec"]["command"][1].as<std::string>());
  EXPECT_GT(pod["spec"]["terminationGracePeriodSeconds"].as<std::int64_t>(), grace + pre_stop);
  const YAML::Node live = c["livenessProbe"];
  EXPECT_GT(live["periodSeconds"].as<std::int64_t>() * live["failureThreshold"].as<std::int64_t>(), grace);
  // CPU limit = the threads bitrun runs (whole cores, requests = limits).
  EXPECT_EQ(c["resources"]["limits"]["cpu"].as<std::string>(), std::to_string(config.get_int("threads")));
  EXPECT_EQ(c["resources"]["requests"]["cpu"].as<std::string>(), c["resources"]["limits"]["cpu"].as<std::string>());
  // The API keys come from the Secret, in the variable bitrun reads for server.api_keys.
  const YAML::Node env = c["env"][0];
  EXPECT_EQ(env["name"].as<std::string>(), config_env_name("server.api_keys"));
  EXPECT_EQ(env["valueFrom"]["secretKeyRef"]["name"].as<std::string>(),
            m["Secret"]["metadata"]["name"].as<std::string>());
  EXPECT_TRUE(m["Secret"]["stringData"][env["valueFrom"]["secretKeyRef"]["key"].as<std::string>()]);
  // Non-root, as the image.
  EXPECT_TRUE(pod["spec"]["securityContext"]["runAsNonRoot"].as<bool>());
  EXPECT_NE(pod["spec"]["securityContext"]["runAsUser"].as<std::int64_t>(), 0);

  // Selectors pick the pod template's labels.
  const YAML::Node labels = pod["metadata"]["labels"];
  EXPECT_TRUE(selects(dep["spec"]["selector"]["matchLabels"], labels));
  EXPECT_TRUE(selects(m["Service"]["spec"]["selector"], labels));
  EXPECT_TRUE(selects(m["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"], labels));
  EXPECT_EQ(m["Service"]["spec"]["ports"][0]["targetPort"].as<std::string>(), "http");
  // Prometheus scrapes /metrics on the server's port.
  EXPECT_EQ(pod["metadata"]["annotations"]["prometheus.io/path"].as<std::string>(), "/metrics");
  EXPECT_EQ(pod["metadata"]["annotations"]["prometheus.io/port"].as<std::string>(),
            std::to_string(config.get_int("server.port")));
}

TEST(Deploy, AutoscalerReadsTheServersQueueDepth) {
  auto m = manifests(kBase);
  const YAML::Node hpa = m["HorizontalPodAutoscaler"];
  EXPECT_EQ(hpa["spec"]["scaleTargetRef"]["kind"].as<std::string>(), "Deployment");
  EXPECT_EQ(hpa["spec"]["scaleTargetRef"]["name"].as<std::string>(),
            m["Deployment"]["metadata"]["name"].as<std::string>());
  const std::string metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"].as<std::string>();
  // The gauge /metrics exports (test_server checks the name there) and the adapter rule that serves it.
  EXPECT_EQ(metric, "bitrun_requests_waiting");
  const YAML::Node rules = YAML::LoadFile((kDeploy / "kubernetes" / "prometheus-adapter-rules.yaml").string());
  EXPECT_EQ(rules["rules"][0]["name"]["as"].as<std::string>(), metric);
  EXPECT_NE(rules["rules"][0]["seriesQuery"].as<std::string>().find(metric), std::string::npos);
  EXPECT_GE(hpa["spec"]["minReplicas"].as<int>(), 2);   // the budget lets one go: one still serves
  EXPECT_EQ(m["PodDisruptionBudget"]["spec"]["maxUnavailable"].as<int>(), 1);
}

TEST(Deploy, OverlayServesASecondModelFromAVolume) {
  const Config config = pod_config(kOverlay);
  const std::string model = config.get_string("model");
  const YAML::Node patch = YAML::LoadFile((kOverlay / "deployment-patch.yaml").string());
  const YAML::Node c = patch["spec"]["template"]["spec"]["containers"][0];
  const std::string mount = c["volumeMounts"][0]["mountPath"].as<std::string>();
  EXPECT_EQ(model.rfind(mount + "/", 0), 0u) << model << " is not under " << mount;
  EXPECT_TRUE(c["volumeMounts"][0]["readOnly"].as<bool>());
  EXPECT_EQ(c["resources"]["limits"]["cpu"].as<std::string>(), std::to_string(config.get_int("threads")));
  const YAML::Node k = YAML::LoadFile((kOverlay / "kustomization.yaml").string());
  EXPECT_EQ(k["configMapGenerator"][0]["behavior"].as<std::string>(), "replace");
  // Its own instance label, so its Deployment and the base's never select each other's pods.
  const YAML::Node base = YAML::LoadFile((kBase / "kustomization.yaml").string());
  EXPECT_NE(k["labels"][0]["pairs"]["app.kubernetes.io/instance"].as<std::string>(),
            base["labels"][0]["pairs"]["app.kubernetes.io/instance"].as<std::string>());
  EXPECT_TRUE(k["labels"][0]["includeSelectors"].as<bool>());
}

TEST(Deploy, DockerfileBuildsWithTheProjectsScriptsAndServes) {
  const std::string d = read_text(kDeploy / "Dockerfile");
  ASSERT_FALSE(d.empty());
  std::vector<std::string> froms, runs;
  std::string user, entrypoint, healthcheck, expose;
  std::istringstream lines(d);
  std::string line, instruction;
  while (std::getline(lines, line)) {   // instructions with their continuation lines
    if (line.empty() || line[0] == '#') continue;
    instruction += line;
    if (!instruction.empty() && instruction.back() == '\\') {
      instruction.pop_back();
      continue;
    }
    const std::string word = instruction.substr(0, instruction.find(' '));
    if (word == "FROM") froms.push_back(instruction);
    if (word == "RUN") runs.push_back(instruction);
    if (word == "USER") user = instruction.substr(5);
    if (word == "ENTRYPOINT") entrypoint = instruction;
    if (word == "HEALTHCHECK") healthcheck = instruction;
    if (word == "EXPOSE") expose = instruction.substr(7);
    instruction.clear();
  }
  ASSERT_EQ(froms.size(), 2u);
  for (const auto& f : froms) EXPECT_NE(f.find("debian:bookworm"), std::string::npos) << f;
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_NE(runs[0].find("bash scripts/install-deps.sh"), std::string::npos);
  EXPECT_NE(runs[0].find("bash scripts/build.sh"), std::string::npos);
  EXPECT_NE(runs[0].find("cmake --install"), std::string::npos);
  EXPECT_NE(runs[1].find("install-deps.sh --runtime"), std::string::npos);
  EXPECT_FALSE(user.empty());
  EXPECT_NE(user, "0");
  EXPECT_NE(user, "root");
  EXPECT_NE(entrypoint.find("bitrun\", \"serve\""), std::string::npos) << entrypoint;
  EXPECT_NE(healthcheck.find("/health"), std::string::npos);
  // The image's own config (the default when no ConfigMap is mounted) is valid and binds the exposed port.
  Config c = test::plugin_config();
  c.load_file(kDeploy / "container-config.yaml");
  EXPECT_EQ(expose, std::to_string(c.get_int("server.port")));
  EXPECT_NE(healthcheck.find("/dev/tcp/127.0.0.1/" + expose), std::string::npos);
  EXPECT_EQ(c.get_string("server.host"), "0.0.0.0");
  // The build context leaves out host build trees (their CMake cache names other paths).
  const std::string ignore = read_text(fs::path(BITRUN_SOURCE_DIR) / ".dockerignore");
  for (const char* entry : {"build/\n", "build-*/\n"}) EXPECT_NE(ignore.find(entry), std::string::npos) << entry;
}

}  // namespace
}  // namespace bitrun
