//! The ingester's internal endpoint (`--target ingester`, on its HTTP port): `POST /internal/v1/recent`
//! with a JSON [`RecentFilter`] answers the spans of the tenant (X-Scope-OrgID) that the ingester holds
//! and the filter keeps, as an Arrow IPC stream whose last column names each row's block
//! (`query/peers.rs` asks; docs/scaling.md). Not for users: with auth on it takes an admin credential
//! only, as `/flush` does.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::query::{admin_only, error_response};
use crate::ingest::{HeldRows, RecentFilter};
use crate::query::peers::{ARROW_STREAM, BLOCK_COLUMN};

/// The handler of [`RECENT_PATH`](crate::query::peers::RECENT_PATH).
pub async fn recent(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = admin_only(&state, &headers) {
        return refused;
    }
    let Some(ingester) = state.ingester.clone() else {
        return error_response(StatusCode::NOT_FOUND, "this process holds no spans: it is not an ingester");
    };
    let tenant = match super::query::tenant_of(&state, &headers) {
        Ok(tenant) => tenant,
        Err(refused) => return refused,
    };
    let filter: RecentFilter = match serde_json::from_slice(&body) {
        Ok(filter) => filter,
        Err(error) => return error_response(StatusCode::BAD_REQUEST, &format!("not a recent-spans filter: {error}")),
    };
    if let Err(error) = filter.column_indices() {
        return error_response(StatusCode::BAD_REQUEST, &format!("not a recent-spans filter: {error}"));
    }
    // Decoding blocks and encoding the answer is CPU work of up to a block's size: off the async threads.
    let answer = tokio::task::spawn_blocking(move || {
        let held = ingester.held_for_peer(&tenant, &filter).map_err(|e| e.public_message())?;
        encode(held, &filter).map_err(|e| e.to_string())
    })
    .await;
    match answer {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, ARROW_STREAM)], body).into_response(),
        Ok(Err(message)) => {
            tracing::warn!(%message, "recent spans for a querier failed");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, &message)
        }
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

/// The rows as one Arrow IPC stream: the filter's columns, then the block column (null for rows of the
/// open buffer). An answer without rows is a stream with the schema only.
fn encode(held: Vec<HeldRows>, filter: &RecentFilter) -> Result<Vec<u8>, arrow::error::ArrowError> {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, FixedSizeBinaryArray, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    let stored = crate::spans::schema::span_schema();
    let columns = filter.column_indices().map_err(|e| arrow::error::ArrowError::SchemaError(e.to_string()))?;
    let mut fields: Vec<Field> = columns.iter().map(|index| stored.field(*index).clone()).collect();
    fields.push(Field::new(BLOCK_COLUMN, DataType::FixedSizeBinary(16), true));
    let schema = Arc::new(Schema::new(fields));
    let mut out = Vec::new();
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &schema)?;
    for HeldRows { block, batch } in held {
        let id = block.map(|block| block.as_u128().to_be_bytes());
        let blocks: ArrayRef = Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(
            std::iter::repeat_n(id, batch.num_rows()),
            16,
        )?);
        let mut arrays = batch.columns().to_vec();
        arrays.push(blocks);
        writer.write(&RecordBatch::try_new(schema.clone(), arrays)?)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// The `/flush` a querier answers: it holds nothing to flush.
pub async fn not_an_ingester() -> Response {
    error_response(StatusCode::NOT_FOUND, "this querier holds no spans: /flush the ingesters")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BlockId;

    #[test]
    fn the_answer_decodes_to_the_same_rows_each_with_its_block() {
        let request = crate::synth::TraceGenerator::new(9).next_request(30);
        let (batch, _) = crate::spans::encode_resource_spans(&request.resource_spans).unwrap();
        let filter = RecentFilter { columns: Some(vec!["trace_id".into(), "name".into()]), ..Default::default() };
        let projected = batch.project(&filter.column_indices().unwrap()).unwrap();
        let block = BlockId::new_random();
        let held = vec![
            HeldRows { block: None, batch: projected.slice(0, 10) },
            HeldRows { block: Some(block), batch: projected.slice(10, projected.num_rows() - 10) },
        ];
        let decoded = crate::query::peers::decode(encode(held, &filter).unwrap().into()).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!((decoded[0].block, decoded[1].block), (None, Some(block)));
        assert_eq!(decoded[0].batch, projected.slice(0, 10));
        assert_eq!(decoded[1].batch, projected.slice(10, projected.num_rows() - 10));

        let empty = crate::query::peers::decode(encode(Vec::new(), &filter).unwrap().into()).unwrap();
        assert!(empty.is_empty(), "no rows: a stream with the schema only");
        let without_blocks = {
            let mut out = Vec::new();
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &projected.schema()).unwrap();
            writer.write(&projected).unwrap();
            writer.finish().unwrap();
            drop(writer);
            out
        };
        assert!(crate::query::peers::decode(without_blocks.into()).is_err(), "an answer must name the blocks");
    }

    #[test]
    fn a_partial_mark_is_one_printable_warning_header() {
        assert!(super::super::query::partial_warning(&[]).is_none());
        let reasons = ["ingester 10.0.0.1:3200: cannot reach it: \"refused\"\nnext".to_owned(), "ünïcode".to_owned()];
        let warning = super::super::query::partial_warning(&reasons).unwrap();
        assert_eq!(
            warning.to_str().unwrap(),
            "199 spanlake \"partial: ingester 10.0.0.1:3200: cannot reach it: ?refused??next; ?n?code\""
        );
    }
}
