use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

use super::*;
use crate::ids::TenantId;

/// A command like `spanlake serve`: `--config` plus every setting's flag.
#[derive(Parser)]
struct Serve {
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingFlags<AllSettings>,
}

fn parse(args: &[&str]) -> ConfigFile {
    let matches = Serve::command().no_binary_name(true).try_get_matches_from(args).expect("flags parse");
    Serve::from_arg_matches(&matches).unwrap().settings.given
}

fn reason(error: &FileError) -> String {
    crate::telemetry::chain(error)
}

#[test]
fn a_config_file_sets_keys_and_refuses_unknown_ones_by_name() {
    let file = ConfigFile::parse(
        "storage: s3://traces/prod\nmultitenancy: true\nmax_block_bytes: 32MiB\nmax_wal_bytes: 1000\nmax_block_age: 90s\n",
    )
    .unwrap();
    let mut config = ServeConfig::default();
    file.apply(&mut config);
    assert_eq!(config.storage.as_deref(), Some("s3://traces/prod"));
    assert!(config.multitenancy);
    assert_eq!((config.max_block_bytes, config.max_wal_bytes), (ByteSize(32 << 20), ByteSize(1000)));
    assert_eq!(config.max_block_age, Duration::from_secs(90));
    assert_eq!(config.http_addr, ServeConfig::default().http_addr, "keys not in the file keep their defaults");

    let unknown = reason(&ConfigFile::parse("max_blok_bytes: 1MiB\n").unwrap_err());
    assert!(unknown.contains("max_blok_bytes"), "{unknown}");
    let bad = reason(&ConfigFile::parse("max_block_age: soon\n").unwrap_err());
    assert!(bad.starts_with("max_block_age: ") && bad.contains("soon"), "the key, then its value: {bad}");
    assert!(reason(&ConfigFile::parse("- a\n- b\n").unwrap_err()).contains("map of settings"));
    assert!(reason(&ConfigFile::parse("a: [\n").unwrap_err()).starts_with("not YAML"));
    let bad = reason(&ConfigFile::parse("target: querier-ish\n").unwrap_err());
    assert!(bad.contains("querier-ish"), "{bad}");
    let bad = reason(&ConfigFile::parse("tenant_retention:\n  ../x: 1d\n").unwrap_err());
    assert!(bad.contains("tenant ID"), "{bad}");
    let bad = reason(&ConfigFile::parse("sql_max_concurrent: [1, 2]\n").unwrap_err());
    assert!(bad.contains("sql_max_concurrent") || bad.contains("single value"), "{bad}");
    assert_eq!(ConfigFile::parse("").unwrap(), ConfigFile::default());
}

#[test]
fn compaction_and_retention_come_from_the_file_with_per_tenant_overrides() {
    let file = ConfigFile::parse(
        "target: compactor\ncompaction_interval: 0s\ncompaction_target_bytes: 64MiB\nretention: 7d\n\
         tenant_retention:\n  team-a: 30d\n",
    )
    .unwrap();
    let mut config = ServeConfig::default();
    assert_eq!(config.retention, Duration::from_secs(14 * 86_400), "14 days by default");
    file.apply(&mut config);
    assert_eq!(config.target, Target::Compactor);
    let options = config.compaction_options();
    assert_eq!(options.interval, Duration::ZERO);
    assert_eq!(options.rules.target_bytes, 64 << 20);
    assert_eq!(options.rules.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(options.tenant_retention[&TenantId::new("team-a").unwrap()], Duration::from_secs(30 * 86_400));
}

#[test]
fn every_setting_has_a_flag_named_after_its_key_with_its_variable_and_default_in_the_help() {
    let command = Serve::command();
    let defaults = ConfigFile::flag_defaults();
    assert_eq!(defaults.len(), SETTINGS.len());
    for (setting, default) in SETTINGS.iter().zip(defaults) {
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_id() == setting.key)
            .unwrap_or_else(|| panic!("no flag for {}", setting.key));
        assert_eq!(arg.get_long(), Some(setting.key.replace('_', "-").as_str()));
        let env = arg.get_env().and_then(|env| env.to_str()).unwrap_or_default();
        assert_eq!(env, format!("SPANLAKE_{}", setting.key.to_uppercase()));
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        assert!(help.starts_with(setting.doc[0].trim()), "{}: {help}", setting.key);
        match default {
            Some(default) => assert!(help.ends_with(&format!("[default: {default}]")), "{help}"),
            None => assert!(!help.contains("[default:"), "{help}"),
        }
    }
}

#[test]
fn flags_read_every_kind_and_win_over_the_file() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("spanlake.yaml");
    std::fs::write(&file, "max_block_bytes: 1MiB\nsql_timeout: 5s\ntenant_retention: {team-a: 30d, team-b: 7d}\n")
        .unwrap();
    let flags = parse(&[
        "--max-block-bytes",
        "2MiB",
        "--multitenancy",
        "--flush-on-shutdown",
        "false",
        "--bloom-false-positive-rate",
        "0.1%",
        "--http-addr",
        "127.0.0.1:0",
        "--target",
        "compactor",
        "--tenant-retention",
        "team-b=1d",
        "--direct-encoding=false",
    ]);
    let config = ServeConfig::layered(Some(&file), flags).unwrap();
    assert_eq!(config.max_block_bytes, ByteSize(2 << 20), "the flag wins");
    assert_eq!(config.sql_timeout, Duration::from_secs(5), "the file wins over the default");
    assert!(config.multitenancy && !config.flush_on_shutdown && !config.direct_encoding);
    assert!(!config.block_options().direct_encoding && !config.compaction_options().block.direct_encoding);
    assert_eq!(config.bloom_false_positive_rate.get(), 0.001);
    assert_eq!(config.http_addr, "127.0.0.1:0".parse().unwrap());
    assert_eq!(config.target, Target::Compactor);
    let day = |days: u64| Duration::from_secs(days * 86_400);
    let tenant = |name: &str| TenantId::new(name).unwrap();
    assert_eq!(config.tenant_retention.0[&tenant("team-a")], day(30), "tenants merge across sources");
    assert_eq!(config.tenant_retention.0[&tenant("team-b")], day(1));

    let missing = ServeConfig::layered(Some(&folder.path().join("nope.yaml")), ConfigFile::default()).unwrap_err();
    assert!(missing.to_string().contains("nope.yaml"), "{missing}");
    assert!(std::error::Error::source(&missing).is_some(), "the I/O error is kept as the cause");
}

#[test]
fn a_request_limit_the_wal_cannot_replay_is_refused_at_start_up() {
    let too_large = parse(&["--max-request-decompressed-bytes", "300MiB"]);
    let error = ServeConfig::layered(None, too_large).unwrap_err();
    assert!(matches!(error, ConfigError::Conflict(_)), "{error}");
    assert!(error.to_string().contains("max_request_decompressed_bytes"), "{error}");
    let largest = format!("{}B", crate::wal::MAX_SPANS_PAYLOAD_BYTES);
    let flags = ["--max-request-decompressed-bytes", &largest, "--max-inflight-request-bytes", "1GiB"];
    let config = ServeConfig::layered(None, parse(&flags)).unwrap();
    assert_eq!(config.body_limits().max_decompressed_bytes, crate::wal::MAX_SPANS_PAYLOAD_BYTES);
}

#[test]
fn a_request_budget_too_small_for_one_request_is_refused_at_start_up() {
    let small = parse(&["--max-request-bytes", "16MiB", "--max-inflight-request-bytes", "32MiB"]);
    let error = ServeConfig::layered(None, small).unwrap_err();
    assert!(matches!(error, ConfigError::Conflict(_)), "{error}");
    assert!(error.to_string().contains("max_inflight_request_bytes"), "{error}");
    let flags = ["--max-request-decompressed-bytes", "16MiB", "--max-inflight-request-bytes", "32MiB"];
    assert!(ServeConfig::layered(None, parse(&flags)).is_ok(), "16 MiB + 16 MiB fits 32 MiB");
    let error = ServeConfig::layered(None, parse(&["--max-connections", "0"])).unwrap_err();
    assert!(error.to_string().contains("max_connections"), "{error}");
}

#[test]
fn a_bad_flag_value_is_refused_with_the_value_named() {
    let error = Serve::command()
        .no_binary_name(true)
        .try_get_matches_from(["--max-block-age", "soon"])
        .map(|_| ())
        .expect_err("refused");
    assert!(error.to_string().contains("soon"), "{error}");
}

#[test]
fn the_example_config_reads_back_as_the_defaults() {
    let example = example_yaml();
    let mut config = ServeConfig { storage: Some("s3://changed/by/the/file".into()), ..ServeConfig::default() };
    ConfigFile::parse(&example).unwrap().apply(&mut config);
    let expected = ServeConfig { storage: config.storage.clone(), ..ServeConfig::default() };
    assert_eq!(config, expected, "every value in the example is the default");
    for setting in SETTINGS {
        assert!(example.contains(&format!("\n{}:", setting.key)) || example.contains(&format!("# {}:", setting.key)));
    }
}

#[test]
fn default_storage_is_the_blocks_folder_inside_the_data_dir() {
    let url = ServeConfig::default().storage_url().unwrap();
    assert!(url.starts_with("file:///"), "{url}");
    assert!(url.ends_with("/spanlake-data/blocks/"), "{url}");
    let explicit = ServeConfig { storage: Some("s3://b/p".into()), ..Default::default() };
    assert_eq!(explicit.storage_url().unwrap(), "s3://b/p");
}

#[test]
fn the_wal_lives_in_the_data_dir() {
    let options = ServeConfig::default().ingest_options();
    assert_eq!(options.wal_dir, PathBuf::from("spanlake-data/wal"));
}

#[test]
fn roles_and_the_ingesters_a_querier_reads_are_settings() {
    for (name, target) in [
        ("all", Target::All),
        ("ingester", Target::Ingester),
        ("querier", Target::Querier),
        ("compactor", Target::Compactor),
    ] {
        assert_eq!(Target::parse(name).unwrap(), target);
        assert_eq!(target.render().as_deref(), Some(name));
    }
    let unknown = Target::parse("distributor").unwrap_err().to_string();
    assert!(unknown.contains("ingester, querier"), "{unknown}");

    let config = ServeConfig::layered(
        None,
        parse(&["--target", "querier", "--ingesters", "ingester-0.spanlake:3200, 10.0.0.7:3200,[::1]:3200"]),
    )
    .unwrap();
    assert_eq!(config.target, Target::Querier);
    assert_eq!(config.peer_options().ingesters, ["ingester-0.spanlake:3200", "10.0.0.7:3200", "[::1]:3200"]);
    let file = ConfigFile::parse("ingesters: [a:3200, b:3200]\n").unwrap();
    let mut from_file = ServeConfig::default();
    file.apply(&mut from_file);
    assert_eq!(from_file.ingesters, HostPorts(vec!["a:3200".into(), "b:3200".into()]));
    for bad in ["no-port", "host:", "host:http", ":3200", "http://host:3200", "host:0"] {
        assert!(HostPorts::parse(bad).is_err(), "{bad} is refused");
    }
    assert_eq!(HostPorts::default().render(), None, "no ingesters: not set");

    // Only an ingester of its own process keeps handed-off blocks: with every role in one process the
    // querier hears of a block before its spans leave the buffer.
    let ingester = ServeConfig { target: Target::Ingester, ..ServeConfig::default() };
    assert_eq!(ingester.ingest_options().handoff_retention, Duration::from_secs(30));
    assert_eq!(ServeConfig::default().ingest_options().handoff_retention, Duration::ZERO);
}
