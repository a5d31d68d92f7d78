//! Tenant state (issue 26, item 11): a tenant costs the server something only once it has data. Queries
//! with any `X-Scope-OrgID` leave nothing behind and make no object-store request once the catalogue has
//! listed the store; the periodic refresh lists only tenants with data; and `max_tenants` caps how many
//! tenants with data one server takes spans for.

mod common;

use common::server::{TestServer, metric, send};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use spanlake::synth::TraceGenerator;

const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");

fn body(seed: u64) -> Vec<u8> {
    TraceGenerator::new(seed).next_request(20).encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_of_tenants_without_data_keep_no_state_and_cost_no_listing() {
    let server = TestServer::start(common::Backend::local(), |config| config.multitenancy = true).await;
    let team_a = [("x-scope-orgid", "team-a"), PROTOBUF];
    assert_eq!(send("POST", &server.traces_url(), &team_a, body(1)).await.status, 200);
    assert_eq!(send("POST", &server.query_url("/flush"), &[team_a[0]], Vec::new()).await.status, 204);
    let catalog = server.server.querier().catalog();
    catalog.refresh_all().await.unwrap();
    assert_eq!(metric(&server, "spanlake_catalog_tenants").await, 1.0);

    let storage = server.server.querier().storage().clone();
    let before = storage.request_counts();
    let trace = "5b8efff798038103d269b633813fc60c";
    for n in 0..100 {
        let tenant = format!("random-{n}");
        let header = [("x-scope-orgid", tenant.as_str())];
        let url = server.query_url(&format!("/api/v2/traces/{trace}"));
        assert_eq!(send("GET", &url, &header, Vec::new()).await.status, 404, "{tenant}");
        let search = send("GET", &server.query_url("/api/search?q=%7B%7D"), &header, Vec::new()).await;
        assert_eq!(search.status, 200, "{tenant}: {}", search.text());
        let sql = send("POST", &server.query_url("/api/sql"), &header, "SELECT count(*) AS n FROM spans").await;
        assert_eq!(sql.status, 200, "{tenant}: {}", sql.text());
        assert!(sql.text().contains("\"rows\":[[0]]"), "{tenant} sees no spans: {}", sql.text());
    }
    let used = storage.request_counts().since(&before);
    assert_eq!(used.total(), 0, "queries of tenants without data make no request: {used:?}");
    assert_eq!(metric(&server, "spanlake_catalog_tenants").await, 1.0, "and leave no tenant behind");

    let before = storage.request_counts();
    catalog.refresh_all().await.unwrap();
    let refresh = storage.request_counts().since(&before);
    assert_eq!(refresh.list, 2, "one LIST of tenants, one of team-a's blocks: {refresh:?}");

    // Another process's first block of a new tenant is found by the next refresh.
    let other = spanlake::ids::TenantId::new("team-b").unwrap();
    let (batch, _) = spanlake::spans::encode_resource_spans(&TraceGenerator::new(2).next_trace()).unwrap();
    let options = common::encoding::block_write_options();
    let written = spanlake::storage::block::write_block(
        &storage,
        &other,
        spanlake::ids::BlockId::new_random(),
        vec![batch],
        &options,
    )
    .await
    .unwrap();
    catalog.refresh_all().await.unwrap();
    assert_eq!(catalog.snapshot(&other).map(|blocks| blocks.len()), Some(1), "{written:?}");
    assert_eq!(metric(&server, "spanlake_catalog_tenants").await, 2.0);
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_tenants_a_new_tenants_spans_are_refused_and_known_tenants_go_on() {
    let server = TestServer::start(common::Backend::local(), |config| {
        config.multitenancy = true;
        config.max_tenants = 2;
    })
    .await;
    let as_tenant = |tenant: &'static str| [("x-scope-orgid", tenant), PROTOBUF];
    assert_eq!(send("POST", &server.traces_url(), &as_tenant("team-a"), body(1)).await.status, 200);
    assert_eq!(send("POST", &server.query_url("/flush"), &[as_tenant("team-a")[0]], Vec::new()).await.status, 204);
    assert_eq!(send("POST", &server.traces_url(), &as_tenant("team-b"), body(2)).await.status, 200);

    let refused = send("POST", &server.traces_url(), &as_tenant("team-c"), body(3)).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    let message = spanlake::api::RpcStatus::decode(refused.body.clone()).unwrap().message;
    assert!(message.contains("max_tenants"), "{message}");
    let mut client = TraceServiceClient::connect(server.grpc_url()).await.unwrap();
    let mut request = tonic::Request::new(ExportTraceServiceRequest::decode(body(4).as_slice()).unwrap());
    request.metadata_mut().insert("x-scope-orgid", "team-c".parse().unwrap());
    let status = client.export(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("max_tenants"), "{status:?}");

    // Tenants with data, in blocks (team-a) or buffered (team-b), are still taken.
    for tenant in ["team-a", "team-b"] {
        assert_eq!(send("POST", &server.traces_url(), &as_tenant(tenant), body(5)).await.status, 200, "{tenant}");
    }
    let sql =
        send("POST", &server.query_url("/api/sql"), &[("x-scope-orgid", "team-c")], "SELECT count(*) AS n FROM spans")
            .await;
    assert!(sql.text().contains("\"rows\":[[0]]"), "nothing of team-c was written: {}", sql.text());
    server.server.shutdown().await.unwrap();
}
