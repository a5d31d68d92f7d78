//! The byte budget of OTLP requests in flight (issue 26, item 5): every request's bytes, as sent,
//! decompressed and decoded, count against one budget shared by both receivers from the moment they
//! arrive until the request is in the WAL and the buffer (which has its own limit from then on).
//!
//! Without it, memory followed the number of concurrent requests: sixteen 60 MB JSON bodies held 2.5 GB
//! while the buffer limit was 64 MiB. A request that finds the budget spent is refused at once with a
//! retryable 429 / `RESOURCE_EXHAUSTED` (waiting would let requests holding part of the budget wait on
//! each other); one that could never fit, even alone, gets 413.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use super::ReceiveError;

/// The budget, shared by every receiver of one server; cheap to clone.
#[derive(Clone, Debug)]
pub struct Admission {
    free: Arc<Semaphore>,
    total: usize,
}

impl Admission {
    /// A budget of `total_bytes` (at least one byte).
    pub fn new(total_bytes: usize) -> Self {
        let total = total_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Self { free: Arc::new(Semaphore::new(total)), total }
    }

    /// The account of a request that has just arrived; it holds nothing yet.
    pub fn admit(&self) -> Admitted {
        Admitted { admission: self.clone(), held: 0 }
    }

    /// Bytes held by requests in flight now (the `spanlake_request_bytes_in_flight` gauge).
    pub fn held_bytes(&self) -> usize {
        self.total - self.free.available_permits()
    }

    /// The whole budget.
    pub fn total_bytes(&self) -> usize {
        self.total
    }
}

/// What one request holds of the budget; dropping it gives the bytes back.
#[derive(Debug)]
pub struct Admitted {
    admission: Admission,
    held: usize,
}

impl Admitted {
    /// Holds `bytes` more, or refuses the request: 413 if it would need more than the whole budget,
    /// else 429 (other requests hold the rest; retry later).
    pub fn hold(&mut self, bytes: usize) -> Result<(), ReceiveError> {
        if bytes == 0 {
            return Ok(());
        }
        let total = self.admission.total;
        let needed = self.held.saturating_add(bytes);
        if needed > total {
            return Err(ReceiveError::TooLarge { limit: total, stage: "held in memory (max_inflight_request_bytes)" });
        }
        // `needed <= total <= MAX_PERMITS`, and `bytes` fits in u32 whenever the budget does; a larger
        // step is taken in pieces.
        let mut left = bytes;
        while left > 0 {
            let step = left.min(u32::MAX as usize);
            match self.admission.free.try_acquire_many(step as u32) {
                Ok(permit) => {
                    permit.forget();
                    self.held += step;
                    left -= step;
                }
                Err(_) => return Err(ReceiveError::Busy { limit: total }),
            }
        }
        Ok(())
    }

    /// Holds exactly `bytes` from now on: more (as [`hold`](Self::hold)) or fewer, as a request moves
    /// from one form to the next (a JSON body's estimate becomes its decoded spans).
    pub fn hold_exactly(&mut self, bytes: usize) -> Result<(), ReceiveError> {
        if bytes >= self.held {
            return self.hold(bytes - self.held);
        }
        self.admission.free.add_permits(self.held - bytes);
        self.held = bytes;
        Ok(())
    }

    /// Bytes this request holds.
    pub fn held_bytes(&self) -> usize {
        self.held
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.free.add_permits(self.held);
    }
}

/// Reads a request body whole, holding its bytes in `admitted` as they arrive: refused as soon as it
/// passes `limit` (413) or the server's budget (429), before the rest is read. A body that fails
/// to arrive becomes `read_error`'s refusal.
pub async fn collect_body<B>(
    body: B,
    limit: usize,
    admitted: &mut Admitted,
    read_error: impl FnOnce(B::Error) -> ReceiveError,
) -> Result<Bytes, ReceiveError>
where
    B: hyper::body::Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let before = admitted.held_bytes();
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    // A declared length (HTTP's Content-Length) sizes the buffer once instead of by doubling.
    if let Some(declared) = body.size_hint().exact().and_then(|n| usize::try_from(n).ok()) {
        if declared > limit {
            return Err(ReceiveError::TooLarge { limit, stage: "as sent" });
        }
        admitted.hold(declared)?;
        joined.reserve_exact(declared);
    }
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => return Err(read_error(error)),
        };
        let Ok(data) = frame.into_data() else { continue };
        let received = first.as_ref().map_or(0, Bytes::len) + joined.len() + data.len();
        if received > limit {
            return Err(ReceiveError::TooLarge { limit, stage: "as sent" });
        }
        // One frame is kept as it came (no copy); more are joined into one buffer, held at its capacity.
        if first.is_none() && joined.is_empty() && joined.capacity() < received {
            admitted.hold(data.len())?;
            first = Some(data);
            continue;
        }
        if joined.capacity() < received {
            let capacity = received.max(joined.capacity() * 2).min(limit);
            admitted.hold_exactly(before + capacity)?;
            joined.reserve_exact(capacity - joined.len());
        }
        if let Some(first) = first.take() {
            joined.extend_from_slice(&first);
        }
        joined.extend_from_slice(&data);
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_share_the_budget_and_give_it_back_when_done() {
        let admission = Admission::new(1000);
        let mut first = admission.admit();
        first.hold(600).unwrap();
        let mut second = admission.admit();
        assert!(matches!(second.hold(500), Err(ReceiveError::Busy { limit: 1000 })), "600 + 500 > 1000");
        assert_eq!(second.held_bytes(), 0, "a refused step holds nothing");
        second.hold(400).unwrap();
        assert_eq!(admission.held_bytes(), 1000);
        first.hold_exactly(100).unwrap();
        assert_eq!(admission.held_bytes(), 500, "shrinking gives the difference back");
        drop(first);
        drop(second);
        assert_eq!(admission.held_bytes(), 0);
    }

    #[test]
    fn a_request_larger_than_the_whole_budget_is_too_large_not_busy() {
        let admission = Admission::new(1000);
        let mut request = admission.admit();
        request.hold(900).unwrap();
        let error = request.hold(200).unwrap_err();
        assert!(matches!(error, ReceiveError::TooLarge { limit: 1000, .. }), "{error}");
        assert!(error.to_string().contains("max_inflight_request_bytes"), "{error}");
        assert_eq!(request.held_bytes(), 900);
    }
}
