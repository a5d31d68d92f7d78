//! `deploy/` (issue 7): the example settings file holds every key with its default, and the compose file,
//! Kubernetes manifests, Collector and Grafana files are valid for the tools that will read them (schema
//! checks from PyPI: the compose spec through check-jsonschema, Kubernetes 1.37 through
//! kubernetes-validate), each check shown to fail on a typo.
//!
//! The split deployment (issue 29, `deploy/kubernetes-split/`): ingesters, queriers, one compactor and a
//! Collector routing by trace ID. Its manifests are valid, each role runs the target it claims with the
//! settings the binary reads, and the Collector configs match `tests/fixtures/collector/
//! loadbalancing.schema.json`, a schema written from the Collector's Go config structs (the Collector itself
//! cannot run here; the schema's `$comment` names the upstream commits).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;
use spanlake::config::{ConfigFile, SETTINGS, ServeConfig, example_yaml};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

/// Every document of a YAML file (several when `---` separates them).
fn documents(file: &str) -> Vec<Yaml> {
    serde_yaml_ng::Deserializer::from_str(&read(file))
        .map(|document| Yaml::deserialize(document).unwrap_or_else(|e| panic!("deploy/{file}: {e}")))
        .collect()
}

/// `spanlake serve --help`, which names each setting's variable as `[env: NAME=]`.
fn serve_help() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_spanlake")).args(["serve", "--help"]).output().unwrap();
    String::from_utf8(output.stdout).unwrap()
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
    let serve_help = serve_help();
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

/// The manifests a folder's kustomization.yaml lists, checked to be every `.yaml` file beside it.
fn kustomized_manifests(folder: &str) -> Vec<String> {
    let kustomization: Yaml = serde_yaml_ng::from_str(&read(&format!("{folder}/kustomization.yaml"))).unwrap();
    let listed: Vec<String> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap().to_owned())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(deploy(folder))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed.iter().cloned().collect::<BTreeSet<_>>(),
        present,
        "{folder}/kustomization.yaml lists every manifest"
    );
    assert_eq!(kustomization["namespace"].as_str(), Some("spanlake"), "{folder}: one namespace for every object");
    listed
}

/// What the tests hold Kubernetes manifests to: the API of Kubernetes 1.33, no unknown fields.
const KUBERNETES_VALIDATE: [&str; 3] = ["--strict", "--kubernetes-version", "1.33.0"];

#[test]
fn the_kubernetes_manifests_are_valid_kubernetes_objects() {
    for manifest in kustomized_manifests("kubernetes") {
        let (passed, said) =
            check("kubernetes-validate", &KUBERNETES_VALIDATE, &deploy(&format!("kubernetes/{manifest}")));
        assert!(passed, "{manifest}: {said}");
    }
    let folder = tempfile::tempdir().unwrap();
    let typo = with_typo("kubernetes/statefulset.yaml", "containerPort:", "containerPrt:", folder.path());
    assert!(!check("kubernetes-validate", &KUBERNETES_VALIDATE, &typo).0, "a misspelt field fails the check");
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

// The split deployment (issue 29): deploy/kubernetes-split/ and the Collector in front of it.

const SPLIT: &str = "kubernetes-split";

/// One object of the split manifests, with the file it is in.
struct Object {
    file: String,
    yaml: Yaml,
}

impl Object {
    fn kind(&self) -> &str {
        self.yaml["kind"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.yaml["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// The labels of a workload's pods.
    fn pod_labels(&self) -> &Yaml {
        &self.yaml["spec"]["template"]["metadata"]["labels"]
    }

    /// The container that runs spanlake, if this is a workload of spanlake.
    fn spanlake_container(&self) -> Option<&Yaml> {
        self.yaml["spec"]["template"]["spec"]["containers"]
            .as_sequence()?
            .iter()
            .find(|container| container["name"].as_str() == Some("spanlake"))
    }
}

/// Every object the split kustomization applies.
fn split_objects() -> Vec<Object> {
    kustomized_manifests(SPLIT)
        .into_iter()
        .flat_map(|file| {
            let path = format!("{SPLIT}/{file}");
            documents(&path).into_iter().map(move |yaml| Object { file: file.clone(), yaml })
        })
        .collect()
}

/// The one object of that kind and name.
fn object<'a>(objects: &'a [Object], kind: &str, name: &str) -> &'a Object {
    let mut found = objects.iter().filter(|object| object.kind() == kind && object.name() == name);
    let object = found.next().unwrap_or_else(|| panic!("no {kind} {name} in deploy/{SPLIT}"));
    assert!(found.next().is_none(), "one {kind} {name}");
    object
}

/// The Deployment or StatefulSet of a spanlake role (`app.kubernetes.io/component` of its pods).
fn role<'a>(objects: &'a [Object], role: &str) -> &'a Object {
    let mut found = objects
        .iter()
        .filter(|object| object.spanlake_container().is_some())
        .filter(|object| object.pod_labels()["app.kubernetes.io/component"].as_str() == Some(role));
    let workload = found.next().unwrap_or_else(|| panic!("no workload runs the {role} role"));
    assert!(found.next().is_none(), "one workload runs the {role} role");
    workload
}

/// Whether every label a selector asks for is on the pod.
fn selects(selector: &Yaml, pod_labels: &Yaml) -> bool {
    let selector = selector.as_mapping().expect("a selector is a map of labels");
    !selector.is_empty() && selector.iter().all(|(key, value)| pod_labels.get(key) == Some(value))
}

/// The value a container's `env` gives a variable (`value:`, not `valueFrom:`).
fn env<'a>(container: &'a Yaml, name: &str) -> Option<&'a str> {
    container["env"].as_sequence()?.iter().find(|entry| entry["name"].as_str() == Some(name))?["value"].as_str()
}

/// The split ConfigMap's spanlake.yaml, as the server reads it.
fn split_settings(objects: &[Object]) -> ServeConfig {
    let embedded = object(objects, "ConfigMap", "spanlake-config").yaml["data"]["spanlake.yaml"].as_str().unwrap();
    let file = ConfigFile::parse(embedded).unwrap_or_else(|e| panic!("{SPLIT} ConfigMap spanlake.yaml: {e}"));
    let mut config = ServeConfig::default();
    file.apply(&mut config);
    config
}

/// The headless Service a `NAME.NAMESPACE.svc.cluster.local` DNS name of the split manifests names.
fn headless_service<'a>(objects: &'a [Object], dns_name: &str) -> &'a Object {
    let name = dns_name
        .strip_suffix(".spanlake.svc.cluster.local")
        .unwrap_or_else(|| panic!("{dns_name} is a Service name in the namespace spanlake"));
    let service = object(objects, "Service", name);
    assert_eq!(service.yaml["spec"]["clusterIP"].as_str(), Some("None"), "{name} is headless: one address per pod");
    service
}

/// The ports a Service exposes.
fn service_ports(service: &Object) -> BTreeSet<u64> {
    service.yaml["spec"]["ports"].as_sequence().unwrap().iter().map(|port| port["port"].as_u64().unwrap()).collect()
}

#[test]
fn the_split_manifests_are_valid_kubernetes_objects() {
    for manifest in kustomized_manifests(SPLIT) {
        let (passed, said) =
            check("kubernetes-validate", &KUBERNETES_VALIDATE, &deploy(&format!("{SPLIT}/{manifest}")));
        assert!(passed, "{manifest}: {said}");
    }
    let folder = tempfile::tempdir().unwrap();
    let typo = with_typo(
        &format!("{SPLIT}/ingester.yaml"),
        "publishNotReadyAddresses:",
        "publishNotReadyAdresses:",
        folder.path(),
    );
    assert!(!check("kubernetes-validate", &KUBERNETES_VALIDATE, &typo).0, "a misspelt field fails the check");
    let typo = with_typo(&format!("{SPLIT}/querier.yaml"), "averageUtilization:", "averageUtilisation:", folder.path());
    assert!(
        !check("kubernetes-validate", &KUBERNETES_VALIDATE, &typo).0,
        "a misspelt autoscaler field fails the check"
    );
}

#[test]
fn each_role_of_the_split_deployment_runs_the_target_it_claims() {
    let objects = split_objects();
    let mut roles = BTreeSet::new();
    for workload in objects.iter().filter(|object| object.spanlake_container().is_some()) {
        let role =
            workload.pod_labels()["app.kubernetes.io/component"].as_str().expect("a spanlake pod names its role");
        assert_eq!(workload.name(), format!("spanlake-{role}"));
        assert_eq!(workload.file, format!("{role}.yaml"), "{role}.yaml holds the {role}");
        let container = workload.spanlake_container().unwrap();
        assert_eq!(env(container, "SPANLAKE_TARGET"), Some(role), "{} runs --target {role}", workload.name());
        assert!(selects(&workload.yaml["spec"]["selector"]["matchLabels"], workload.pod_labels()));
        assert!(roles.insert(role.to_owned()), "one workload per role");
    }
    assert_eq!(roles, BTreeSet::from(["compactor", "ingester", "querier"].map(String::from)));
}

#[test]
fn the_split_ingesters_keep_their_wal_and_flush_before_they_stop() {
    let objects = split_objects();
    let ingester = role(&objects, "ingester");
    assert_eq!(ingester.kind(), "StatefulSet", "each ingester has its own WAL volume");
    let data_dir = split_settings(&objects).data_dir;
    let container = ingester.spanlake_container().unwrap();
    let wal_mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|mount| Path::new(mount["mountPath"].as_str().unwrap()) == data_dir)
        .expect("a volume at data_dir");
    let claims: Vec<&str> = ingester.yaml["spec"]["volumeClaimTemplates"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|claim| claim["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(claims.contains(&wal_mount["name"].as_str().unwrap()), "the WAL is on a persistent volume claim");
    // On SIGTERM: up to 10 s draining requests, then the shutdown flush (30 s by default), with room to spare.
    let grace = ingester.yaml["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace >= 60, "{grace} s is too short for the drain and the shutdown flush");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/ready"));
    let ports: BTreeSet<u64> =
        container["ports"].as_sequence().unwrap().iter().map(|port| port["containerPort"].as_u64().unwrap()).collect();
    assert_eq!(ports, BTreeSet::from([3200, 4317, 4318, 9411]), "OTLP, Zipkin and the HTTP port; no query ports");

    // The Service the StatefulSet's pods take their names from is the queriers' one: it lists draining pods.
    let governing = object(&objects, "Service", ingester.yaml["spec"]["serviceName"].as_str().unwrap());
    assert!(selects(&governing.yaml["spec"]["selector"], ingester.pod_labels()));
    assert_eq!(governing.yaml["spec"]["publishNotReadyAddresses"].as_bool(), Some(true));

    let budgets: Vec<&Object> = objects
        .iter()
        .filter(|object| object.kind() == "PodDisruptionBudget")
        .filter(|budget| selects(&budget.yaml["spec"]["selector"]["matchLabels"], ingester.pod_labels()))
        .collect();
    assert_eq!(budgets.len(), 1, "one disruption budget for the ingesters");
    assert_eq!(budgets[0].yaml["spec"]["maxUnavailable"].as_u64(), Some(1), "one ingester down at a time");
}

#[test]
fn the_split_queriers_are_stateless_autoscaled_and_read_every_ingester() {
    let objects = split_objects();
    let querier = role(&objects, "querier");
    assert_eq!(querier.kind(), "Deployment", "stateless: any pod is as good as another");
    let pod = &querier.yaml["spec"]["template"]["spec"];
    let volumes: Vec<&Yaml> = pod["volumes"].as_sequence().map(|volumes| volumes.iter().collect()).unwrap_or_default();
    assert!(volumes.iter().all(|volume| volume.get("configMap").is_some()), "no volume but the settings");

    let container = querier.spanlake_container().unwrap();
    assert!(
        container["resources"]["requests"]["cpu"].as_str().is_some(),
        "the autoscaler measures CPU against a request"
    );
    assert!(container["resources"]["limits"]["memory"].as_str().is_some());
    let autoscaler = objects.iter().find(|object| object.kind() == "HorizontalPodAutoscaler").expect("an autoscaler");
    assert_eq!(autoscaler.yaml["apiVersion"].as_str(), Some("autoscaling/v2"));
    let target = &autoscaler.yaml["spec"]["scaleTargetRef"];
    assert_eq!((target["kind"].as_str(), target["name"].as_str()), (Some("Deployment"), Some(querier.name())));
    assert_eq!(autoscaler.yaml["spec"]["metrics"][0]["resource"]["name"].as_str(), Some("cpu"));
    assert!(autoscaler.yaml["spec"]["minReplicas"].as_u64() >= Some(2), "no single querier to lose");

    let service = object(&objects, "Service", "spanlake-querier");
    assert!(selects(&service.yaml["spec"]["selector"], querier.pod_labels()));
    assert_eq!(service_ports(service), BTreeSet::from([3200, 16686]), "Tempo's and Jaeger's query ports");
    let budget = objects
        .iter()
        .find(|object| {
            object.kind() == "PodDisruptionBudget"
                && selects(&object.yaml["spec"]["selector"]["matchLabels"], querier.pod_labels())
        })
        .expect("a disruption budget for the queriers");
    assert_eq!(budget.yaml["spec"]["minAvailable"].as_u64(), Some(1));

    // Every ingester, draining ones too, through the names of one headless Service.
    let ingesters = env(container, "SPANLAKE_INGESTERS").expect("the querier names its ingesters");
    let (host, port) = ingesters.rsplit_once(':').expect("HOST:PORT");
    assert_eq!(port, "3200", "the ingesters' HTTP port");
    let service = headless_service(&objects, host);
    assert!(selects(&service.yaml["spec"]["selector"], role(&objects, "ingester").pod_labels()));
    assert!(service_ports(service).contains(&3200));
    assert_eq!(
        service.yaml["spec"]["publishNotReadyAddresses"].as_bool(),
        Some(true),
        "a draining ingester still holds spans that are not in a block yet"
    );
}

#[test]
fn the_split_compactor_runs_alone() {
    let objects = split_objects();
    let compactor = role(&objects, "compactor");
    assert_eq!(compactor.kind(), "Deployment");
    assert_eq!(compactor.yaml["spec"]["replicas"].as_u64(), Some(1), "exactly one compactor");
    assert_eq!(compactor.yaml["spec"]["strategy"]["type"].as_str(), Some("Recreate"), "no second one during a rollout");
    let scaled = objects.iter().filter(|object| object.kind() == "HorizontalPodAutoscaler");
    assert!(
        scaled
            .into_iter()
            .all(|autoscaler| autoscaler.yaml["spec"]["scaleTargetRef"]["name"].as_str() != Some(compactor.name()))
    );
}

#[test]
fn the_settings_the_split_deployment_gives_are_ones_the_server_accepts() {
    let objects = split_objects();
    let settings = split_settings(&objects);
    assert!(settings.storage.as_deref().is_some_and(|url| url.starts_with("s3://")), "every role reads one bucket");

    // Names only: the values of some (--target ingester, querier) are new to the binary.
    let serve_help = serve_help();
    for workload in objects.iter().filter(|object| object.spanlake_container().is_some()) {
        let container = workload.spanlake_container().unwrap();
        let args: Vec<&str> =
            container["args"].as_sequence().unwrap().iter().map(|arg| arg.as_str().unwrap()).collect();
        assert_eq!(args.first(), Some(&"serve"));
        for flag in args.iter().filter(|arg| arg.starts_with("--")) {
            assert!(
                serve_help.contains(&format!("{flag} ")),
                "{} passes {flag}, which spanlake serve does not take",
                workload.name()
            );
        }
        for entry in container["env"].as_sequence().unwrap() {
            let name = entry["name"].as_str().unwrap();
            // A secret's value is not shown: `[env: NAME]` rather than `[env: NAME=value]`.
            let reads =
                serve_help.contains(&format!("[env: {name}=")) || serve_help.contains(&format!("[env: {name}]"));
            assert!(reads, "{} sets {name}, which spanlake serve does not read", workload.name());
        }
        for source in container["envFrom"].as_sequence().unwrap() {
            let secret = object(&objects, "Secret", source["secretRef"]["name"].as_str().unwrap());
            for key in secret.yaml["stringData"].as_mapping().unwrap().keys() {
                let key = key.as_str().unwrap();
                assert!(
                    key.starts_with("AWS_"),
                    "{} gets {key} from the Secret, which spanlake does not read",
                    workload.name()
                );
            }
        }
    }
    // The single-binary deployment's Secret, unchanged: one set of credentials works for both.
    let single: Yaml = serde_yaml_ng::from_str(&read("kubernetes/secret.yaml")).unwrap();
    let split = &object(&objects, "Secret", single["metadata"]["name"].as_str().unwrap()).yaml;
    assert_eq!(split["stringData"], single["stringData"]);
}

/// Runs check-jsonschema with the Collector schema on a config file.
fn check_collector_config(file: &Path) -> (bool, String) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/collector/loadbalancing.schema.json");
    check("check-jsonschema", &["--schemafile", schema.to_str().unwrap()], file)
}

/// The Collector config the split manifests' ConfigMap holds.
fn split_collector_config(objects: &[Object]) -> &str {
    object(objects, "ConfigMap", "otel-collector-config").yaml["data"]["config.yaml"].as_str().unwrap()
}

#[test]
fn the_collector_configs_match_the_collectors_schema() {
    for file in ["otel-collector.yaml", "otel-collector-loadbalancing.yaml"] {
        let (passed, said) = check_collector_config(&deploy(file));
        assert!(passed, "{file}: {said}");
    }
    let folder = tempfile::tempdir().unwrap();
    let embedded = folder.path().join("split-collector.yaml");
    std::fs::write(&embedded, split_collector_config(&split_objects())).unwrap();
    let (passed, said) = check_collector_config(&embedded);
    assert!(passed, "the split ConfigMap's config.yaml: {said}");

    let file = "otel-collector-loadbalancing.yaml";
    for (word, typo, what) in [
        ("routing_key:", "routing_kay:", "a misspelt key"),
        ("routing_key: traceID", "routing_key: traceid", "a routing key the exporter does not know"),
        ("port: \"4317\"", "port: 4317", "a number for the string-typed DNS port"),
        ("insecure: true", "insecur: true", "a misspelt key of the OTLP exporter template"),
    ] {
        let typo = with_typo(file, word, typo, folder.path());
        assert!(!check_collector_config(&typo).0, "{what} fails the check");
    }
}

#[test]
fn the_split_collector_routes_traces_by_id_to_the_ready_ingesters() {
    let objects = split_objects();
    let file = read("otel-collector-loadbalancing.yaml");
    assert_eq!(
        split_collector_config(&objects),
        file,
        "the split ConfigMap holds deploy/otel-collector-loadbalancing.yaml"
    );
    let config: Yaml = serde_yaml_ng::from_str(&file).unwrap();
    let traces = &config["service"]["pipelines"]["traces"];
    assert_eq!(traces["exporters"], serde_yaml_ng::from_str::<Yaml>("[loadbalancing]").unwrap());
    let exporter = &config["exporters"]["loadbalancing"];
    assert_eq!(exporter["routing_key"].as_str(), Some("traceID"), "all spans of a trace go to one ingester");

    let dns = &exporter["resolver"]["dns"];
    assert_eq!(dns["port"].as_str(), Some("4317"), "the ingesters' OTLP/gRPC port");
    let service = headless_service(&objects, dns["hostname"].as_str().expect("a DNS resolver"));
    assert!(
        selects(&service.yaml["spec"]["selector"], role(&objects, "ingester").pod_labels()),
        "it names the ingesters"
    );
    assert!(service_ports(service).contains(&4317));
    assert_ne!(
        service.yaml["spec"]["publishNotReadyAddresses"].as_bool(),
        Some(true),
        "new spans go only to ingesters that are ready to take them"
    );

    // The Collector runs that config and takes OTLP on the usual ports.
    let collector = object(&objects, "Deployment", "otel-collector");
    let container = &collector.yaml["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"][0].as_str(), Some("--config=/etc/otelcol/config.yaml"));
    let mount = &container["volumeMounts"][0];
    assert_eq!(mount["mountPath"].as_str(), Some("/etc/otelcol"));
    let volumes = collector.yaml["spec"]["template"]["spec"]["volumes"].as_sequence().unwrap();
    let volume = volumes.iter().find(|volume| volume["name"] == mount["name"]).unwrap();
    assert_eq!(volume["configMap"]["name"].as_str(), Some("otel-collector-config"));
    let service = object(&objects, "Service", "otel-collector");
    assert!(selects(&service.yaml["spec"]["selector"], collector.pod_labels()));
    assert_eq!(service_ports(service), BTreeSet::from([4317, 4318]));
}
