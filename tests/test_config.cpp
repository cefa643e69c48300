// Config: precedence, strict keys and types, printing, and the shipped example files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "bitrun/config/config.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/model/kv_cache.hpp"
#include "bitrun/plugin/plugin_abi.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

std::filesystem::path write_temp(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("bitrun_test_" + name);
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::function<void()>& f) { return test::error_message<ConfigError>(f); }

TEST(Config, DefaultsComeFromTheSchema) {
  Config c = test::plugin_config();
  EXPECT_EQ(c.get_string("backend"), "auto");
  EXPECT_EQ(c.get_int("server.port"), 8080);
  EXPECT_DOUBLE_EQ(c.get_float("decoder.threshold"), 0.9);
  EXPECT_TRUE(c.get_string_list("server.api_keys").empty());
  EXPECT_EQ(c.source_of("threads"), ConfigSource::Default);
}

TEST(Config, PrecedenceIsCliOverEnvOverFileOverDefault) {
  auto file = write_temp("prec.yaml", "threads: 3\nbackend: avx2\nserver:\n  port: 9001\n  host: 0.0.0.0\n");
  Config c = test::plugin_config();
  c.load_file(file);
  std::string env_threads = "BITRUN_THREADS=5", env_port = "BITRUN_SERVER_PORT=9002";
  char* envp[] = {env_threads.data(), env_port.data(), nullptr};
  c.load_environment(envp);
  c.set_from_cli("threads=7");

  EXPECT_EQ(c.get_int("threads"), 7);               // CLI beats env and file
  EXPECT_EQ(c.source_of("threads"), ConfigSource::CommandLine);
  EXPECT_EQ(c.get_int("server.port"), 9002);        // env beats file
  EXPECT_EQ(c.origin_of("server.port"), "BITRUN_SERVER_PORT");
  EXPECT_EQ(c.get_string("backend"), "avx2");       // file beats default
  EXPECT_EQ(c.origin_of("backend"), file.string());
  EXPECT_EQ(c.get_string("server.host"), "0.0.0.0");
  EXPECT_EQ(c.get_string("log.level"), "info");     // default
}

TEST(Config, UnknownKeysNameTheKeyTheFileAndTheLine) {
  auto file = write_temp("unknown.yaml", "threads: 2\nserver:\n  prot: 80\n");
  Config c = test::plugin_config();
  std::string msg = error_of([&] { c.load_file(file); });
  EXPECT_NE(msg.find(file.string() + ":3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'server.prot'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'server.port'"), std::string::npos) << msg;
  EXPECT_EQ(c.get_int("threads"), 0) << "a rejected file must not be half-applied";

  auto top = write_temp("unknown_top.yaml", "colour: blue\n");
  EXPECT_NE(error_of([&] { test::plugin_config().load_file(top); }).find("unknown key 'colour'"), std::string::npos);
}

TEST(Config, WrongTypesAndValuesAreRejected) {
  struct Case {
    std::string yaml, expect;
  } cases[] = {
      {"threads: two\n", "key 'threads': expected an integer, got 'two'"},
      {"threads: 2.5\n", "key 'threads': expected an integer"},
      {"threads: -1\n", "key 'threads': value -1 is out of range"},
      {"decoder:\n  threshold: 1.5\n", "key 'decoder.threshold': value 1.5 is out of range"},
      {"decoder:\n  threshold: high\n", "key 'decoder.threshold': expected a number"},
      {"log:\n  level: loud\n", "key 'log.level': 'loud' is not one of"},
      {"kv_cache:\n  type: q4\n", "key 'kv_cache.type': 'q4' is not one of: f16, int8"},
      {"server: 5\n", "key 'server' is a section and must be a mapping"},
      {"server:\n  port: [1, 2]\n", "key 'server.port': expected an integer, got a list"},
      {"server:\n  api_keys:\n    a: b\n", "key 'server.api_keys': expected a list of strings"},
      {"threads:\n", "key 'threads': has no value"},
      {"- a\n- b\n", "the top level must be a mapping"},
      {"threads: [1\n", "invalid YAML"},
  };
  for (const auto& tc : cases) {
    auto file = write_temp("bad.yaml", tc.yaml);
    std::string msg = error_of([&] { test::plugin_config().load_file(file); });
    EXPECT_NE(msg.find(tc.expect), std::string::npos) << "yaml: " << tc.yaml << "\nmessage: " << msg;
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
  }
}

TEST(Config, MissingFileIsAClearError) {
  EXPECT_NE(error_of([] { Config().load_file("/nonexistent/bitrun.yaml"); }).find("cannot open config file"),
            std::string::npos);
}

TEST(Config, EnvironmentListsAndTyposAreHandled) {
  std::string keys = "BITRUN_SERVER_API_KEYS=k1, k2", typo = "BITRUN_THREDS=4", path = "BITRUN_PLUGIN_PATH=/x",
              other = "HOME=/root";
  char* envp[] = {keys.data(), typo.data(), path.data(), other.data(), nullptr};
  Config c = test::plugin_config();
  c.load_environment(envp);
  EXPECT_EQ(c.get_string_list("server.api_keys"), (std::vector<std::string>{"k1", "k2"}));
  ASSERT_EQ(c.unknown_environment().size(), 1u);   // BITRUN_PLUGIN_PATH is known, HOME is not ours
  EXPECT_EQ(c.unknown_environment()[0], "BITRUN_THREDS");

  std::string bad = "BITRUN_SERVER_PORT=eighty";
  char* bad_env[] = {bad.data(), nullptr};
  std::string msg = error_of([&] { test::plugin_config().load_environment(bad_env); });
  EXPECT_NE(msg.find("BITRUN_SERVER_PORT: key 'server.port': expected an integer"), std::string::npos) << msg;
}

TEST(Config, CliOverridesAreValidated) {
  Config c = test::plugin_config();
  EXPECT_NE(error_of([&] { c.set_from_cli("nope=1"); }).find("unknown key 'nope'"), std::string::npos);
  EXPECT_NE(error_of([&] { c.set_from_cli("threads"); }).find("expected key=value"), std::string::npos);
  c.set_from_cli("cpu.disable=[avx512f, avx512bw]");
  EXPECT_EQ(c.get_string_list("cpu.disable"), (std::vector<std::string>{"avx512f", "avx512bw"}));
  c.set_from_cli("model=08.gguf");   // strings stay verbatim
  EXPECT_EQ(c.get_string("model"), "08.gguf");
}

TEST(Config, KvCacheTypeIsF16UnlessSetAndBadValuesNameTheKey) {
  Config c = test::plugin_config();
  EXPECT_EQ(kv_cache_type_from_config(c), KvCacheType::F16);
  c.set_from_cli("kv_cache.type=int8");
  EXPECT_EQ(kv_cache_type_from_config(c), KvCacheType::Int8);
  std::string cli = error_of([&] { c.set_from_cli("kv_cache.type=int4"); });
  EXPECT_NE(cli.find("kv_cache.type"), std::string::npos) << cli;
  EXPECT_NE(cli.find("'int4' is not one of: f16, int8"), std::string::npos) << cli;
  std::string bad = "BITRUN_KV_CACHE_TYPE=F16";   // values are case-sensitive, like every enum key
  char* env[] = {bad.data(), nullptr};
  std::string from_env = error_of([&] { test::plugin_config().load_environment(env); });
  EXPECT_NE(from_env.find("BITRUN_KV_CACHE_TYPE: key 'kv_cache.type'"), std::string::npos) << from_env;
  // The parser behind kv_cache_type_from_config names the key too.
  EXPECT_NE(error_of([] { parse_kv_cache_type("fp8"); }).find("kv_cache.type: 'fp8'"), std::string::npos);
  EXPECT_EQ(parse_kv_cache_type("f16"), KvCacheType::F16);
}

TEST(Config, PrintedConfigReloadsToTheSameValuesAndHidesApiKeys) {
  Config c = test::plugin_config();
  c.set_from_cli("threads=3");
  c.set_from_cli("decoder.threshold=0.75");
  c.set_from_cli("server.host=::1");
  auto printed = write_temp("printed.yaml", c.to_yaml(true));
  Config reloaded = test::plugin_config();
  reloaded.load_file(printed);
  EXPECT_EQ(reloaded.to_yaml(false), c.to_yaml(false));
  EXPECT_EQ(reloaded.get_int("threads"), 3);
  EXPECT_DOUBLE_EQ(reloaded.get_float("decoder.threshold"), 0.75);
  EXPECT_EQ(reloaded.get_string("server.host"), "::1");
  EXPECT_NE(c.to_yaml(true).find("# from command line"), std::string::npos);

  c.set_from_cli("server.api_keys=[secret-one]");
  EXPECT_EQ(c.to_yaml(true).find("secret-one"), std::string::npos);
}

TEST(Config, ShippedDefaultFileMatchesGeneratedDefaults) {
  std::filesystem::path shipped = std::filesystem::path(BITRUN_SOURCE_DIR) / "configs" / "default.yaml";
  std::ifstream in(shipped);
  ASSERT_TRUE(in) << shipped;
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), default_config_yaml(test::plugin_config().schema()))
      << "regenerate with: bitrun generate-config configs/default.yaml --force";
}

TEST(Config, EveryShippedExampleLoads) {
  int loaded = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(BITRUN_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    Config c = test::plugin_config();
    EXPECT_NO_THROW(c.load_file(entry.path())) << entry.path();
    ++loaded;
  }
  EXPECT_GE(loaded, 4);
}

TEST(Config, TheCoreAloneDoesNotKnowPluginKeysAndPluginKeysNameTheirPlugin) {
  std::string msg = error_of([] { Config().set_from_cli("decoder.threshold=0.5"); });
  EXPECT_NE(msg.find("unknown key 'decoder.threshold'"), std::string::npos) << msg;
  Config c = test::plugin_config();
  c.set_from_cli("decoder.threshold=0.5");
  EXPECT_DOUBLE_EQ(c.get_float("decoder.threshold"), 0.5);
  EXPECT_EQ(c.schema().find("decoder.threshold")->owner, "plugin 'diffusion'");
  EXPECT_EQ(c.schema().find("server.port")->owner, "plugin 'http'");
  EXPECT_EQ(c.schema().find("server.port")->option, "--port");
  EXPECT_EQ(c.schema().find("decoder.type")->owner, "");   // choosing the plugin is the core's
  // The plugin host tells where plugin keys come from.
  msg = error_of([&] { c.set_from_cli("decoder.treshold=0.5"); });
  EXPECT_NE(msg.find("did you mean 'decoder.threshold'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("keys beyond the core's come from the plugins found in " BITRUN_TEST_PLUGIN_DIR),
            std::string::npos) << msg;
}

TEST(Config, TheFirstPassSkipsKeysItDoesNotKnowButChecksThoseItDoes) {
  auto file = write_temp("two_pass.yaml", "threads: 2\ndecoder:\n  threshold: 0.5\nserver:\n  port: 9000\n");
  Config core;
  core.load_file(file, Config::UnknownKeys::Skip);
  EXPECT_EQ(core.get_int("threads"), 2);
  EXPECT_NE(error_of([&] { Config().load_file(file); }).find("unknown key 'decoder.threshold'"), std::string::npos);
  auto bad = write_temp("two_pass_bad.yaml", "threads: two\nserver:\n  port: 9000\n");
  EXPECT_NE(error_of([&] { Config().load_file(bad, Config::UnknownKeys::Skip); }).find("key 'threads'"),
            std::string::npos);
}

TEST(Config, SchemaRefusesClashingAndMalformedKeys) {
  ConfigSchema schema = *core_config_schema();
  auto key = [](std::string path, std::string option = "") {
    ConfigKey k;
    k.path = std::move(path);
    k.type = ConfigType::Int;
    k.default_value = std::int64_t{0};
    k.option = std::move(option);
    k.owner = "plugin 'test'";
    return k;
  };
  auto add_error = [&](ConfigKey k) { return error_of([&] { schema.add(k); }); };
  EXPECT_NE(add_error(key("threads")).find("'threads' (from plugin 'test') is already defined by the core"),
            std::string::npos);
  EXPECT_NE(add_error(key("threads.extra")).find("clashes with 'threads'"), std::string::npos);
  EXPECT_NE(add_error(key("log")).find("a key cannot also be a section"), std::string::npos);
  EXPECT_NE(add_error(key("Bad Key")).find("lower-case words"), std::string::npos);
  EXPECT_NE(add_error(key("test.value", "-v")).find("must start with --"), std::string::npos);
  // Two keys may not share an environment variable (kv.cache_type and kv_cache.type are both BITRUN_KV_CACHE_TYPE).
  EXPECT_NE(add_error(key("kv.cache_type")).find("has the environment variable BITRUN_KV_CACHE_TYPE of 'kv_cache.type'"),
            std::string::npos);
  schema.add(key("test.value", "--value"));
  EXPECT_NE(add_error(key("test.other", "--value")).find("option --value already sets 'test.value'"),
            std::string::npos);
  EXPECT_EQ(schema.find_option("--value")->path, "test.value");
}

TEST(Config, PluginSettingsBecomeKeysAndInconsistentOnesAreRefused) {
  const PluginSetting good{"test.level", ConfigType::String, "low", "help", "low|high", kUnbounded, kUnbounded,
                           nullptr, false};
  ConfigKey key = config_key_of(good, "plugin 'test'");
  EXPECT_EQ(std::get<std::string>(key.default_value), "low");
  EXPECT_EQ(key.choices, (std::vector<std::string>{"low", "high"}));
  EXPECT_FALSE(key.min.has_value());
  const PluginSetting list{"test.names", ConfigType::StringList, "[a, b]", "help", nullptr, kUnbounded, kUnbounded,
                           nullptr, true};
  EXPECT_EQ(std::get<std::vector<std::string>>(config_key_of(list, "p").default_value),
            (std::vector<std::string>{"a", "b"}));
  const PluginSetting outside{"test.n", ConfigType::Int, "7", "help", nullptr, 0.0, 5.0, nullptr, false};
  std::string msg = error_of([&] { config_key_of(outside, "plugin 'test'"); });
  EXPECT_NE(msg.find("plugin 'test' (default value): key 'test.n': value 7 is out of range [0, 5]"),
            std::string::npos) << msg;
  // One-sided bounds print as such.
  const PluginSetting at_least_zero{"test.f", ConfigType::Float, "1.0", "help", nullptr, 0.0, kUnbounded, nullptr,
                                    false};
  msg = error_of([&] { parse_config_value(config_key_of(at_least_zero, "p"), "-1", "here"); });
  EXPECT_NE(msg.find("value -1 is out of range [0, inf]"), std::string::npos) << msg;
  // A secret string is hidden like a secret list.
  ConfigSchema schema = *core_config_schema();
  schema.add(config_key_of({"test.token", ConfigType::String, "", "help", nullptr, kUnbounded, kUnbounded, nullptr,
                            true}, "p"));
  Config c(std::make_shared<const ConfigSchema>(schema));
  c.set_from_cli("test.token=s3cret");
  EXPECT_EQ(c.to_yaml(false).find("s3cret"), std::string::npos);
  EXPECT_NE(c.to_yaml(false).find("token: \"<hidden>\""), std::string::npos) << c.to_yaml(false);
  const PluginSetting not_a_choice{"test.level", ConfigType::String, "mid", "help", "low|high", kUnbounded,
                                   kUnbounded, nullptr, false};
  EXPECT_NE(error_of([&] { config_key_of(not_a_choice, "p"); }).find("'mid' is not one of: low, high"),
            std::string::npos);
}

TEST(Config, EnvironmentNames) {
  EXPECT_EQ(config_env_name("server.api_keys"), "BITRUN_SERVER_API_KEYS");
  EXPECT_EQ(config_env_name("threads"), "BITRUN_THREADS");
}

}  // namespace
}  // namespace bitrun
