//! One storage conformance suite, run against every backend spanlake supports: the local folder (the
//! embedded default), `object_store`'s in-memory store, and a real S3-compatible server (moto) on
//! loopback. Every backend must behave the same for the operations the block layer relies on.

mod common;

use bytes::Bytes;
use common::Backend;
use common::encoding::block_write_options;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use spanlake::ids::{BlockId, TenantId, TraceId};
use spanlake::spans::{decode_resource_spans, encode_resource_spans};
use spanlake::storage::block::{find_trace, load_bloom, load_footer, write_block};
use spanlake::storage::{
    FORMAT_VERSION, RangeReads, StorageError, delete_block, layout, list_blocks, list_tenants, read_block_meta,
};
use spanlake::synth::TraceGenerator;

fn pattern(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
}

async fn put_get_head_delete(backend: &Backend) {
    let store = backend.storage.object_store();
    let path = Path::from("conformance/object");
    store.put(&path, PutPayload::from_static(b"hello")).await.unwrap();
    assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"hello"));
    assert_eq!(store.head(&path).await.unwrap().size, 5);
    store.delete(&path).await.unwrap();
    let missing = store.get(&path).await.unwrap_err();
    assert!(matches!(missing, object_store::Error::NotFound { .. }), "{}: {missing}", backend.name);
}

async fn list_is_recursive_and_list_with_delimiter_is_not(backend: &Backend) {
    let store = backend.storage.object_store();
    for name in ["dir/a/1", "dir/a/2", "dir/b/3", "dir_sibling/4"] {
        store.put(&Path::from(name), PutPayload::from_static(b"x")).await.unwrap();
    }
    let mut listed: Vec<String> =
        store.list(Some(&Path::from("dir"))).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
    listed.sort();
    assert_eq!(listed, ["dir/a/1", "dir/a/2", "dir/b/3"], "{}", backend.name);
    let shallow = store.list_with_delimiter(Some(&Path::from("dir"))).await.unwrap();
    let mut prefixes: Vec<String> = shallow.common_prefixes.iter().map(|p| p.to_string()).collect();
    prefixes.sort();
    assert_eq!(prefixes, ["dir/a", "dir/b"], "{}", backend.name);
    assert!(shallow.objects.is_empty());
}

async fn range_reads_return_exact_bytes_and_nearby_ranges_share_a_request(backend: &Backend) {
    let store = backend.storage.object_store();
    let path = Path::from("conformance/ranges");
    let data = pattern(4 << 20);
    store.put(&path, PutPayload::from_bytes(data.clone())).await.unwrap();
    assert_eq!(store.get_range(&path, 10..20).await.unwrap(), data.slice(10..20));
    let before = backend.storage.request_counts();
    let ranges = [100..200, 300..400, 3_000_000..3_000_010];
    let got = store.get_ranges(&path, &ranges).await.unwrap();
    for (range, bytes) in ranges.iter().zip(&got) {
        assert_eq!(bytes, &data.slice(range.start as usize..range.end as usize));
    }
    let used = backend.storage.request_counts().since(&before);
    let expected_requests = match backend.storage.range_reads() {
        RangeReads::Exact => 1,
        RangeReads::Coalesce { .. } => 2, // the two nearby ranges merge; the far one (> 1 MiB away) is separate
    };
    assert_eq!(used.get, expected_requests, "{}", backend.name);
    assert!(used.get_bytes < 1_000, "{}: read {} bytes", backend.name, used.get_bytes);
}

async fn concurrent_conditional_creates_have_exactly_one_winner(backend: &Backend) {
    let store = backend.storage.object_store();
    let path = Path::from("conformance/once");
    let attempts = (0..8u8).map(|i| {
        let (store, path) = (store.clone(), path.clone());
        tokio::spawn(async move {
            let create = PutOptions { mode: PutMode::Create, ..Default::default() };
            store.put_opts(&path, PutPayload::from(vec![i; 4]), create).await
        })
    });
    let outcomes = futures::future::join_all(attempts).await;
    let winners = outcomes.iter().filter(|o| matches!(o, Ok(Ok(_)))).count();
    let losers = outcomes.iter().filter(|o| matches!(o, Ok(Err(object_store::Error::AlreadyExists { .. })))).count();
    assert_eq!((winners, losers), (1, 7), "{}: {outcomes:?}", backend.name);
}

async fn multipart_uploads_assemble_their_parts(backend: &Backend) {
    let store = backend.storage.object_store();
    let path = Path::from("conformance/multipart");
    let (first, second) = (pattern(5 * 1024 * 1024), pattern(1024));
    let mut upload = store.put_multipart(&path).await.unwrap();
    upload.put_part(PutPayload::from_bytes(first.clone())).await.unwrap();
    upload.put_part(PutPayload::from_bytes(second.clone())).await.unwrap();
    upload.complete().await.unwrap();
    let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(stored.len(), first.len() + second.len());
    assert_eq!(stored.slice(..first.len()), first);
    assert_eq!(stored.slice(first.len()..), second);
}

async fn copy_if_not_exists_refuses_to_overwrite(backend: &Backend) {
    let store = backend.storage.object_store();
    let (source, target) = (Path::from("conformance/source"), Path::from("conformance/target"));
    store.put(&source, PutPayload::from_static(b"one")).await.unwrap();
    store.copy_if_not_exists(&source, &target).await.unwrap();
    assert_eq!(store.get(&target).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"one"));
    store.put(&source, PutPayload::from_static(b"two")).await.unwrap();
    let refused = store.copy_if_not_exists(&source, &target).await.unwrap_err();
    assert!(matches!(refused, object_store::Error::AlreadyExists { .. }), "{}: {refused}", backend.name);
    assert_eq!(store.get(&target).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"one"));
}

async fn blocks_are_listed_only_once_committed_and_found_by_trace_id(backend: &Backend) {
    let storage = &backend.storage;
    let tenant = TenantId::new("team-a").unwrap();
    let mut generator = TraceGenerator::new(11);
    let traces: Vec<_> = (0..40).map(|_| generator.next_trace()).collect();
    let (batch, _) = encode_resource_spans(&traces.concat()).unwrap();
    let id = BlockId::new_random();
    let meta = write_block(storage, &tenant, id, vec![batch.clone()], &block_write_options()).await.unwrap();
    assert_eq!(meta.span_count as usize, batch.num_rows());
    assert_eq!(meta.trace_count, 40);

    // An upload that never committed: data without metadata.
    let orphan = BlockId::new_random();
    storage.object_store().put(&layout::data_path(&tenant, orphan), PutPayload::from_static(b"partial")).await.unwrap();

    let listing = list_blocks(storage, &tenant).await.unwrap();
    assert_eq!(listing.committed, [id], "{}", backend.name);
    let uncommitted: Vec<_> = listing.uncommitted.iter().map(|leftover| leftover.block).collect();
    assert_eq!(uncommitted, [orphan], "{}", backend.name);
    assert!(listing.uncommitted[0].last_modified_unix_ms > 0, "{}: leftovers carry their age", backend.name);
    assert_eq!(read_block_meta(storage, &tenant, id).await.unwrap(), meta);

    let bloom = load_bloom(storage, &meta).await.unwrap();
    let footer = load_footer(storage, &meta).await.unwrap();
    for trace in traces.iter().step_by(7) {
        let trace_id = TraceId::from_slice(&trace[0].scope_spans[0].spans[0].trace_id).unwrap();
        assert!(bloom.may_contain(&trace_id));
        let found = find_trace(storage, &meta, &footer, &trace_id).await.unwrap();
        let decoded = decode_resource_spans(&found).unwrap();
        assert_eq!(common::otlp::canonical(&decoded), common::otlp::canonical(trace), "{}", backend.name);
    }
    let unknown = TraceId::from_hex("ffffffffffffffffffffffffffffffff").unwrap();
    assert!(find_trace(storage, &meta, &footer, &unknown).await.unwrap().is_empty());

    delete_block(storage, &tenant, id).await.unwrap();
    assert!(list_blocks(storage, &tenant).await.unwrap().committed.is_empty());
    let left: Vec<_> =
        storage.object_store().list(Some(&layout::block_prefix(&tenant, id))).try_collect().await.unwrap();
    assert!(left.is_empty(), "{}: {left:?}", backend.name);
    assert!(matches!(read_block_meta(storage, &tenant, id).await, Err(StorageError::BlockNotFound(_))));
}

async fn tenants_only_see_their_own_blocks(backend: &Backend) {
    let storage = &backend.storage;
    let (alpha, beta) = (TenantId::new("alpha").unwrap(), TenantId::new("beta").unwrap());
    let (batch, _) = encode_resource_spans(&TraceGenerator::new(3).next_trace()).unwrap();
    let options = block_write_options();
    let alpha_block = write_block(storage, &alpha, BlockId::new_random(), vec![batch.clone()], &options).await.unwrap();
    let beta_block = write_block(storage, &beta, BlockId::new_random(), vec![batch], &options).await.unwrap();
    assert_eq!(list_blocks(storage, &alpha).await.unwrap().committed, [alpha_block.block_id]);
    assert_eq!(list_blocks(storage, &beta).await.unwrap().committed, [beta_block.block_id]);
    assert_eq!(list_tenants(storage).await.unwrap(), [alpha, beta]);
}

/// Every character CONTRACTS §2 allows in a tenant ID, and the names that are only dots, survive the
/// trip into object names and back through a listing, so compaction, retention and the catalogue find
/// every tenant's blocks.
async fn every_allowed_tenant_name_lists_back_as_itself(backend: &Backend) {
    let storage = &backend.storage;
    let names = ["a!b", "a-b", "a_b", "a.b", "*", "team*", "a'b", "(x)", "...", ".hidden", "Ab9"];
    let (batch, _) = encode_resource_spans(&TraceGenerator::new(4).next_trace()).unwrap();
    let mut written = Vec::new();
    for name in names {
        let tenant = TenantId::new(name).unwrap();
        let options = block_write_options();
        let meta = write_block(storage, &tenant, BlockId::new_random(), vec![batch.clone()], &options).await.unwrap();
        written.push((tenant, meta.block_id));
    }
    // Something else sharing the bucket is not a tenant, and does not hide the tenants.
    storage.object_store().put(&Path::from("not a tenant/x"), PutPayload::from_static(b"x")).await.unwrap();
    let mut expected: Vec<TenantId> = written.iter().map(|(tenant, _)| tenant.clone()).collect();
    expected.sort();
    assert_eq!(list_tenants(storage).await.unwrap(), expected, "{}", backend.name);
    for (tenant, block) in &written {
        assert_eq!(list_blocks(storage, tenant).await.unwrap().committed, [*block], "{}: {tenant}", backend.name);
    }
}

async fn a_block_of_an_unknown_format_version_is_refused_with_a_clear_error(backend: &Backend) {
    let storage = &backend.storage;
    let tenant = TenantId::single_tenant();
    let (batch, _) = encode_resource_spans(&TraceGenerator::new(5).next_trace()).unwrap();
    let meta = write_block(storage, &tenant, BlockId::new_random(), vec![batch], &block_write_options()).await.unwrap();
    let mut future = serde_json::to_value(&meta).unwrap();
    future["format_version"] = (FORMAT_VERSION + 1).into();
    future["some_new_field"] = "x".into();
    let path = layout::meta_path(&tenant, meta.block_id);
    storage.object_store().put(&path, PutPayload::from(serde_json::to_vec(&future).unwrap())).await.unwrap();
    let error = read_block_meta(storage, &tenant, meta.block_id).await.unwrap_err();
    let newer = u64::from(FORMAT_VERSION + 1);
    assert!(
        matches!(error, StorageError::UnsupportedFormatVersion { found, supported, .. } if found == newer && supported == FORMAT_VERSION),
        "{error}"
    );
    assert!(error.to_string().contains(&format!("format version {newer}")), "{error}");
}

async fn rewriting_a_committed_block_is_idempotent(backend: &Backend) {
    let storage = &backend.storage;
    let tenant = TenantId::single_tenant();
    let (batch, _) = encode_resource_spans(&TraceGenerator::new(9).next_trace()).unwrap();
    let id = BlockId::from_u128(42);
    let options = block_write_options();
    write_block(storage, &tenant, id, vec![batch.clone()], &options).await.unwrap();
    // A retry after a crash between commit and WAL truncation writes the same block again.
    write_block(storage, &tenant, id, vec![batch], &options).await.unwrap();
    assert_eq!(list_blocks(storage, &tenant).await.unwrap().committed, [id]);
}

macro_rules! conformance_suite {
    ($($check:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() { super::$check(&crate::common::Backend::local()).await })*
        }
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() { super::$check(&crate::common::Backend::memory()).await })*
        }
        mod s3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() { super::$check(&crate::common::Backend::s3()).await })*
        }
    };
}

conformance_suite!(
    put_get_head_delete,
    list_is_recursive_and_list_with_delimiter_is_not,
    range_reads_return_exact_bytes_and_nearby_ranges_share_a_request,
    concurrent_conditional_creates_have_exactly_one_winner,
    multipart_uploads_assemble_their_parts,
    copy_if_not_exists_refuses_to_overwrite,
    blocks_are_listed_only_once_committed_and_found_by_trace_id,
    tenants_only_see_their_own_blocks,
    every_allowed_tenant_name_lists_back_as_itself,
    a_block_of_an_unknown_format_version_is_refused_with_a_clear_error,
    rewriting_a_committed_block_is_idempotent,
);
