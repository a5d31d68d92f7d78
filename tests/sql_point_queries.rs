//! SQL point queries (CONTRACTS §5): `WHERE trace_id = …` and short `IN` lists skip DataFusion's planning
//! and answer exactly what DataFusion answers. The test counts the fast path's uses in
//! `spanlake_sql_point_queries_total`, a process-wide counter, so it has a test binary to itself: no other
//! test's queries can add to the count.

mod common;

use common::Backend;
use common::server::{TestServer, send};
use common::sql::{answer, load_fixture};

/// `spanlake_sql_point_queries_total` from `/metrics`.
async fn point_queries(server: &TestServer) -> u64 {
    let text = send("GET", &server.query_url("/metrics"), &[], "").await.text();
    let name = "spanlake_sql_point_queries_total ";
    text.lines().find_map(|line| line.strip_prefix(name)?.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_queries_skip_planning_and_answer_what_datafusion_answers() {
    let backend = Backend::local();
    let server = TestServer::start(backend.storage.clone(), |config| config.multitenancy = true).await;
    load_fixture(&server, Some("team-a")).await;
    let team_a = [("x-scope-orgid", "team-a")];
    // In a block, in the ingester, both, neither; any projection, IDs as users type them.
    let point_queries_sent = [
        "SELECT * FROM spans WHERE trace_id = '5B8EFFF798038103D269B633813FC60C'",
        "SELECT * FROM spans WHERE trace_id IN ('abc', 'eee19b7ec3c1b174a1b2c3d4e5f60718', '0ABC')",
        "SELECT name, span_id, attributes, events FROM spans WHERE trace_id = 'eee19b7ec3c1b174a1b2c3d4e5f60718'",
        "select Name, \"kind\", start_time from SPANS where '0abc' = TRACE_ID",
        "SELECT * FROM spans WHERE trace_id = 'fff'",
    ];
    let before = point_queries(&server).await;
    for query in point_queries_sent {
        let (columns, rows) = answer(&server, query, &team_a).await;
        // One clause more and DataFusion plans it: the same columns and rows.
        let planned = answer(&server, &format!("{query} AND true"), &team_a).await;
        assert_eq!((&columns, &rows), (&planned.0, &planned.1), "{query}");
        assert!(query.contains("'fff'") || !rows.is_empty(), "{query} finds spans");
        // Another tenant's point query sees none of them.
        let (_, theirs) = answer(&server, query, &[("x-scope-orgid", "team-b")]).await;
        assert!(theirs.is_empty(), "{query}: {theirs:?}");
    }
    // Exactly two per query (team a's and team b's): the `AND true` controls were planned by DataFusion.
    let counted = point_queries(&server).await - before;
    assert_eq!(counted, 2 * point_queries_sent.len() as u64, "point queries counted");
}
