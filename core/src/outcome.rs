//! The intake's vocabulary: what became of a change handed in (accepted with its starts, or a
//! duplicate of a delivery or of a change), each pipeline's decision with its reason (the
//! decision log), and the start id of (change, pipeline) and of its replays.
//!
//! Below both the store, which answers an intake with an [`IntakeOutcome`], and the parts
//! that have no store (Lambda starts each change itself and answers with the same words), so
//! that neither imports the other's.

use sha2::{Digest, Sha256};

/// The answer to an intake: in `serve` once the change is on disk, in Lambda once its starts
/// succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntakeOutcome {
    /// A new change; these start ids were created.
    Accepted {
        change_id: String,
        starts: Vec<String>,
    },
    /// Seen before: as this delivery id, or as this change from any source.
    Duplicate { change_id: String, why: DuplicateOf },
}

/// What an intake duplicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DuplicateOf {
    Delivery,
    Change,
}

/// A pipeline's verdict for one change, with the reason `explain` prints. The intake records
/// one per pipeline that watches the change's repository (the decision log).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    pub pipeline: String,
    pub start: bool,
    pub reason: String,
}

/// The start id of (change, pipeline): stable across attempts and restarts.
pub fn start_id(change_id: &str, pipeline: &str) -> String {
    let mut h = Sha256::new();
    h.update(change_id.as_bytes());
    h.update([0u8]);
    h.update(pipeline.as_bytes());
    crate::signature::to_hex(&h.finalize()[..16])
}

/// The start id of replay `n` (1, 2, …) of (change, pipeline): a new start, as stable as the
/// first one, that never equals it.
pub fn replay_start_id(change_id: &str, pipeline: &str, n: u32) -> String {
    if n == 0 {
        return start_id(change_id, pipeline);
    }
    let mut h = Sha256::new();
    h.update(change_id.as_bytes());
    h.update([0u8]);
    h.update(pipeline.as_bytes());
    h.update([0u8]);
    h.update(format!("replay {n}").as_bytes());
    crate::signature::to_hex(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ids_are_the_first_128_bits_of_a_sha256_in_hex() {
        // The first half of SHA-256("c\0p").
        let id = start_id("c", "p");
        assert_eq!(id, "29f73cfff78de4f16103e0bd9671d43d");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(start_id("c", "p"), start_id("c", "q"));
        assert_ne!(start_id("ab", "c"), start_id("a", "bc"));
    }

    #[test]
    fn replays_have_ids_of_their_own() {
        assert_eq!(replay_start_id("c", "p", 0), start_id("c", "p"));
        let one = replay_start_id("c", "p", 1);
        assert_ne!(one, start_id("c", "p"));
        assert_ne!(one, replay_start_id("c", "p", 2));
        assert_eq!(one, replay_start_id("c", "p", 1));
        assert_eq!(one.len(), 32);
    }
}
