//! github payloads.

use hyper::HeaderMap;
use jiff::Timestamp;

use super::{NormalizeError, Normalized};

/// Normalizes one github delivery.
pub fn normalize(
    _headers: &HeaderMap,
    _body: &[u8],
    _received_at: Timestamp,
) -> Result<Normalized, NormalizeError> {
    Err(NormalizeError::new("provider", "not written yet"))
}
