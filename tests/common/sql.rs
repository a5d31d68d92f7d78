//! Talking to `POST /api/sql` of a test server, and the SQL fixture (`tests/fixtures/sql/`): part
//! flushed to blocks, part left in the ingester.

use std::path::Path;

use serde_json::Value;

use super::server::{Reply, TestServer, send};

/// Sends the fixture: `flushed.json` into blocks, `recent.json` left in the ingester.
pub async fn load_fixture(server: &TestServer, tenant: Option<&str>) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sql");
    let mut headers = vec![("content-type", "application/json")];
    if let Some(tenant) = tenant {
        headers.push(("x-scope-orgid", tenant));
    }
    let flushed = std::fs::read(fixtures.join("flushed.json")).unwrap();
    assert_eq!(send("POST", &server.traces_url(), &headers, flushed).await.status, 200);
    assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
    let recent = std::fs::read(fixtures.join("recent.json")).unwrap();
    assert_eq!(send("POST", &server.traces_url(), &headers, recent).await.status, 200);
}

/// Sends `query` to `/api/sql` in `format` with `headers`.
pub async fn sql(server: &TestServer, query: &str, format: &str, headers: &[(&str, &str)]) -> Reply {
    let url = server.query_url(&format!("/api/sql?format={format}"));
    let mut all = vec![("content-type", "application/sql")];
    all.extend_from_slice(headers);
    send("POST", &url, &all, query.to_owned()).await
}

/// The JSON result of a query that must succeed.
pub async fn rows(server: &TestServer, query: &str, headers: &[(&str, &str)]) -> Vec<Vec<Value>> {
    let reply = sql(server, query, "json", headers).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.text());
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    serde_json::from_value(body["rows"].clone()).unwrap()
}

/// The JSON columns and rows (sorted) of a query that must succeed.
pub async fn answer(server: &TestServer, query: &str, headers: &[(&str, &str)]) -> (Value, Vec<Value>) {
    let reply = sql(server, query, "json", headers).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.text());
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    let mut rows: Vec<Value> = serde_json::from_value(body["rows"].clone()).unwrap();
    rows.sort_by_key(Value::to_string);
    (body["columns"].clone(), rows)
}
