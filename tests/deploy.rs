//! `deploy/` (issue 7): the example settings file holds every key with its default, and the compose file,
//! Kubernetes manifests, Collector and Grafana files are valid for the tools that will read them (schema
//! checks from PyPI: the compose spec through check-jsonschema, Kubernetes 1.37 through
//! kubernetes-validate), each check shown to fail on a typo.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use spanlake::config::{ConfigFile, SETTINGS, ServeConfig, example_yaml};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

/// Every key the server knows, from the settings' one declaration.
fn known_keys() -> BTreeSet<String> {
    SETTINGS.iter().map(|setting| setting.key.to_owned()).collect()
}

/// Top-level keys a YAML text sets or shows commented out (`key: …` or `# key: …` at the line start).
fn keys_in(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.strip_prefix("# ").unwrap_or(line);
            let (key, _) = line.split_once(':')?;
            (!key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')).then(|| key.to_owned())
        })
        .collect()
}

/// The file is generated from the settings' declaration; `SPANLAKE_BLESS=1` rewrites it after a change.
#[test]
fn the_example_settings_file_is_the_one_generated_from_the_declaration() {
    let generated = example_yaml();
    if std::env::var_os("SPANLAKE_BLESS").is_some() {
        std::fs::write(deploy("spanlake.yaml"), &generated).unwrap();
    }
    assert!(
        read("spanlake.yaml") == generated,
        "deploy/spanlake.yaml differs from the settings' declaration (src/config/mod.rs); \
         `SPANLAKE_BLESS=1 cargo test --test deploy` rewrites it"
    );
}

#[test]
fn the_example_settings_file_holds_every_key_with_its_default() {
    let text = read("spanlake.yaml");
    let parsed = ConfigFile::parse(&text).unwrap_or_else(|e| panic!("deploy/spanlake.yaml: {e}"));
    let mut config = ServeConfig::default();
    parsed.apply(&mut config);
    assert_eq!(
        config,
        ServeConfig::default(),
        "every value in deploy/spanlake.yaml is the default (storage, which has none, is commented out)"
    );
    let (known, shown) = (known_keys(), keys_in(&text));
    let missing: Vec<_> = known.difference(&shown).collect();
    let unknown: Vec<_> = shown.difference(&known).collect();
    assert!(missing.is_empty(), "keys in code but not in deploy/spanlake.yaml: {missing:?}");
    assert!(unknown.is_empty(), "keys in deploy/spanlake.yaml the server does not know: {unknown:?}");
    assert!(known.len() >= 30, "{known:?}");
}

#[test]
fn the_settings_the_deployments_give_are_ones_the_server_accepts() {
    let manifest: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("kubernetes/configmap.yaml")).unwrap();
    let embedded = manifest["data"]["spanlake.yaml"].as_str().expect("the ConfigMap holds spanlake.yaml");
    let file = ConfigFile::parse(embedded).unwrap_or_else(|e| panic!("ConfigMap spanlake.yaml: {e}"));
    let mut config = ServeConfig::default();
    file.apply(&mut config);
    assert!(config.storage.as_deref().is_some_and(|url| url.starts_with("s3://")), "backed by S3/MinIO");

    // The compose file configures spanlake only through variables the binary reads.
    let compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("docker-compose.yaml")).unwrap();
    let environment = compose["services"]["spanlake"]["environment"].as_mapping().expect("spanlake's environment");
    let serve_help = String::from_utf8(
        Command::new(env!("CARGO_BIN_EXE_spanlake")).args(["serve", "--help"]).output().unwrap().stdout,
    )
    .unwrap();
    for name in environment.keys().map(|key| key.as_str().unwrap()) {
        let known = name.starts_with("AWS_") || serve_help.contains(&format!("env: {name}="));
        assert!(known, "compose sets {name}, which spanlake serve does not read");
    }
    let collector: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("otel-collector.yaml")).unwrap();
    assert_eq!(collector["exporters"]["otlp/spanlake"]["endpoint"].as_str(), Some("spanlake:4317"));
    let grafana: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("grafana/datasources.yaml")).unwrap();
    let source = &grafana["datasources"][0];
    assert_eq!((source["type"].as_str(), source["url"].as_str()), (Some("tempo"), Some("http://spanlake:3200")));
    // Grafana streams search results over gRPC on the same port when asked to (tests/search_stream.rs).
    assert_eq!(source["jsonData"]["streamingEnabled"]["search"].as_bool(), Some(true));
}

/// Runs a schema checker on a file; returns whether it passed and what it said.
fn check(program: &str, args: &[&str], file: &Path) -> (bool, String) {
    let output = Command::new(common::tools::tool(program)).args(args).arg(file).output().expect(program);
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), said)
}

/// The file with one word misspelt, in a temporary folder.
fn with_typo(file: &str, word: &str, typo: &str, folder: &Path) -> PathBuf {
    let text = read(file);
    assert!(text.contains(word), "{file} contains {word}");
    let path = folder.join(Path::new(file).file_name().unwrap());
    std::fs::write(&path, text.replacen(word, typo, 1)).unwrap();
    path
}

#[test]
fn the_compose_file_matches_the_compose_spec() {
    let args = ["--builtin-schema", "vendor.compose-spec"];
    let (passed, said) = check("check-jsonschema", &args, &deploy("docker-compose.yaml"));
    assert!(passed, "{said}");
    let folder = tempfile::tempdir().unwrap();
    let typo = with_typo("docker-compose.yaml", "depends_on:", "depend_on:", folder.path());
    assert!(!check("check-jsonschema", &args, &typo).0, "a misspelt key fails the check");
}

#[test]
fn the_kubernetes_manifests_are_valid_kubernetes_objects() {
    let kustomization: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("kubernetes/kustomization.yaml")).unwrap();
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap().to_owned())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(deploy("kubernetes"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization.yaml lists every manifest");
    let args = ["--strict", "--kubernetes-version", "1.33.0"];
    for manifest in &listed {
        let (passed, said) = check("kubernetes-validate", &args, &deploy(&format!("kubernetes/{manifest}")));
        assert!(passed, "{manifest}: {said}");
    }
    let folder = tempfile::tempdir().unwrap();
    let typo = with_typo("kubernetes/statefulset.yaml", "containerPort:", "containerPrt:", folder.path());
    assert!(!check("kubernetes-validate", &args, &typo).0, "a misspelt field fails the check");
}

/// A `spanlake serve` process configured like the compose file's spanlake service; killed when dropped.
struct Deployed(common::process::Serving);

impl Deployed {
    /// Starts the binary with the compose file's environment for spanlake, except what points into the
    /// compose network (the S3 endpoint, the bucket, the config path). The WAL goes to `wal_dir` (the
    /// image's volume) and the ports are ephemeral loopback ones so tests run side by side.
    fn start(environment: &[(String, String)], wal_dir: &Path) -> Self {
        Self(common::process::serve(
            Command::new(env!("CARGO_BIN_EXE_spanlake"))
                .arg("serve")
                .envs(environment.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("SPANLAKE_DATA_DIR", wal_dir)
                .env("SPANLAKE_HTTP_ADDR", "127.0.0.1:0")
                .env("SPANLAKE_OTLP_GRPC_ADDR", "127.0.0.1:0")
                .env("SPANLAKE_OTLP_HTTP_ADDR", "127.0.0.1:0")
                .env("SPANLAKE_JAEGER_ADDR", "127.0.0.1:0")
                .env("SPANLAKE_ZIPKIN_ADDR", "127.0.0.1:0"),
        ))
    }

    fn stop(mut self) {
        assert!(self.0.process.terminate().success(), "exit 0 after SIGTERM");
    }
}

#[test]
fn the_s3_deployment_path_works_end_to_end_configured_like_the_compose_file() {
    let s3 = common::s3::S3Server::shared();
    let bucket = s3.new_bucket();
    let compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("docker-compose.yaml")).unwrap();
    let environment: Vec<(String, String)> = compose["services"]["spanlake"]["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(key, value)| {
            let key = key.as_str().unwrap().to_owned();
            let value = match key.as_str() {
                "AWS_ENDPOINT_URL" => s3.endpoint(),
                "SPANLAKE_STORAGE" => format!("s3://{bucket}/spanlake"),
                "SPANLAKE_CONFIG" => deploy("spanlake.yaml").to_string_lossy().into_owned(),
                _ => value.as_str().unwrap().to_owned(),
            };
            (key, value)
        })
        .collect();
    assert!(environment.iter().any(|(key, _)| key == "AWS_SECRET_ACCESS_KEY"), "S3 credentials come from AWS_*");

    let first_wal = tempfile::tempdir().unwrap();
    let server = Deployed::start(&environment, first_wal.path());
    let report = common::sdk::send(common::sdk::Export {
        protocol: "grpc",
        endpoint: &format!("http://{}", server.0.grpc),
        tenant: "single-tenant",
        traces: 4,
        gzip: false,
    });
    let sent = report["spans"].as_array().unwrap();
    assert_eq!(common::http::request(server.0.http, "POST", "/flush").unwrap().0, 204);
    server.stop();

    // A new pod: fresh WAL volume, same bucket. Everything must come from the blocks.
    let second_wal = tempfile::tempdir().unwrap();
    let server = Deployed::start(&environment, second_wal.path());
    let traces: BTreeSet<&str> = sent.iter().map(|span| span["trace_id"].as_str().unwrap()).collect();
    for trace in &traces {
        let (status, body) = common::http::request(server.0.http, "GET", &format!("/api/v2/traces/{trace}")).unwrap();
        assert_eq!(status, 200, "{trace}: {body}");
        let found: serde_json::Value = serde_json::from_str(&body).unwrap();
        let spans = common::otlp::json_span_count(&found["trace"]["resourceSpans"]);
        let expected = sent.iter().filter(|span| span["trace_id"] == *trace).count();
        assert_eq!(spans, expected, "trace {trace} is whole");
    }
    let counted = Command::new(env!("CARGO_BIN_EXE_spanlake"))
        .args(["sql", "SELECT count(*) AS spans FROM spans", "--format", "csv", "--server"])
        .arg(format!("http://{}", server.0.http))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(counted.stdout).unwrap(), format!("spans\r\n{}\r\n", sent.len()));
    server.stop();
}
