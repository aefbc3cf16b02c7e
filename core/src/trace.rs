//! W3C Trace Context `traceparent` (<https://www.w3.org/TR/trace-context/>), the header that
//! ties a delivery to the starts it makes: parsed and validated (anything invalid is ignored,
//! never an error to the sender), made fresh for a change that came without one, made a child
//! for each outgoing request, and printed as version `00`.
//!
//! Pure: no I/O, no async runtime, no OpenTelemetry (the spans' side is `telemetry`).

use std::fmt;

/// A valid `traceparent`: a trace id and a parent (span) id, neither all zeros, and the flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

/// The `sampled` flag, the only one version `00` defines.
pub const SAMPLED: u8 = 0x01;

impl TraceParent {
    /// The `traceparent` in `header`, or `None` when it is not a valid one (which the spec says
    /// to ignore, starting a new trace).
    ///
    /// Version `00` is exactly `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lower
    /// case. A later version (not `ff`) is read the same way as far as version `00` goes, and
    /// may go on only after a `-`; only its sampled flag is kept, since the other bits mean
    /// what that version says.
    pub fn parse(header: &str) -> Option<TraceParent> {
        let s = header.trim_matches([' ', '\t']).as_bytes();
        if s.len() < 55 || s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
            return None;
        }
        let version = lower_hex::<1>(&s[0..2])?[0];
        if version == 0xff {
            return None;
        }
        match (version, s.len()) {
            (0, 55) => {}
            (0, _) => return None,
            (_, 55) => {}
            (_, _) if s[55] == b'-' => {}
            _ => return None,
        }
        let trace_id = lower_hex::<16>(&s[3..35])?;
        let parent_id = lower_hex::<8>(&s[36..52])?;
        let mut flags = lower_hex::<1>(&s[53..55])?[0];
        if version != 0 {
            flags &= SAMPLED;
        }
        TraceParent::from_parts(trace_id, parent_id, flags)
    }

    /// A `traceparent` of these ids, `None` when either is all zeros (invalid).
    pub fn from_parts(trace_id: [u8; 16], parent_id: [u8; 8], flags: u8) -> Option<TraceParent> {
        (trace_id != [0; 16] && parent_id != [0; 8]).then_some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new trace: random trace and parent ids, sampled.
    pub fn root() -> TraceParent {
        TraceParent {
            trace_id: nonzero_u128().to_be_bytes(),
            parent_id: nonzero_u64().to_be_bytes(),
            flags: SAMPLED,
        }
    }

    /// The trace of a change that arrived without one, derived from its id, so that nothing
    /// needs storing: the trace id is the change id (128 bits, hex: a change id is one), else a
    /// hash of it; the parent id a hash of it. Sampled.
    pub fn of_change(change_id: &str) -> TraceParent {
        use sha2::{Digest as _, Sha256};
        let digest = Sha256::digest(change_id.as_bytes());
        let mut trace_id = lower_hex::<16>(change_id.as_bytes()).unwrap_or_default();
        if trace_id == [0; 16] {
            trace_id.copy_from_slice(&digest[..16]);
        }
        let mut parent_id = [0u8; 8];
        parent_id.copy_from_slice(&digest[16..24]);
        if parent_id == [0; 8] {
            parent_id[7] = 1;
        }
        TraceParent {
            trace_id,
            parent_id,
            flags: SAMPLED,
        }
    }

    /// The `traceparent` of a request made on behalf of this one: the same trace and flags, a
    /// new random parent id.
    pub fn child(&self) -> TraceParent {
        TraceParent {
            parent_id: nonzero_u64().to_be_bytes(),
            ..*self
        }
    }

    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    pub fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }

    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    /// Version `00`: `00-<trace id>-<parent id>-<flags>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = *b"00-________________________________-________________-__";
        let written = hex::encode_to_slice(self.trace_id, &mut out[3..35])
            .and_then(|()| hex::encode_to_slice(self.parent_id, &mut out[36..52]))
            .and_then(|()| hex::encode_to_slice([self.flags], &mut out[53..55]));
        match (written, std::str::from_utf8(&out)) {
            (Ok(()), Ok(text)) => f.write_str(text),
            _ => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

/// `N` bytes from exactly `2N` lower-case hex digits (upper case is invalid in a `traceparent`).
fn lower_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N
        || !digits
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

fn nonzero_u128() -> u128 {
    loop {
        let n = fastrand::u128(..);
        if n != 0 {
            return n;
        }
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let n = fastrand::u64(..);
        if n != 0 {
            return n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_without_a_trace_has_one_named_by_its_id() {
        let id = "547b1d6942a7afb59aad5a5fba43a1a9";
        let t = TraceParent::of_change(id);
        assert_eq!(t.trace_id_hex(), id);
        assert_eq!(t, TraceParent::of_change(id), "the same every time");
        assert_eq!(TraceParent::parse(&t.to_string()), Some(t));
        assert_ne!(t.parent_id(), [0; 8]);
        let odd = TraceParent::of_change("not-hex");
        assert_ne!(odd.trace_id(), [0; 16]);
        let zeros = TraceParent::of_change("00000000000000000000000000000000");
        assert_ne!(zeros.trace_id(), [0; 16]);
    }

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_reads_and_prints_back_the_same() {
        let tp = TraceParent::parse(VALID).expect("valid");
        assert_eq!(tp.to_string(), VALID);
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            tp.parent_id(),
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(tp.flags(), SAMPLED);
        // Unknown flag bits of version 00 are kept as sent; surrounding blanks are not a value.
        let other = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(TraceParent::parse(other).map(|t| t.flags()), Some(0));
        assert_eq!(
            TraceParent::parse(&format!(" {VALID}\t")).map(|t| t.to_string()),
            Some(VALID.to_owned())
        );
    }

    #[test]
    fn malformed_headers_are_ignored() {
        // (why, header): each must read as no traceparent at all.
        let cases = [
            ("empty", ""),
            ("garbage", "hello"),
            (
                "too short",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            ),
            (
                "too long for 00",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            ),
            (
                "trailing junk on 00",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
            ),
            (
                "upper-case trace id",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            ),
            (
                "upper-case parent id",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            ),
            (
                "upper-case version",
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "zero trace id",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            (
                "zero parent id",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            ),
            (
                "version ff",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "non-hex version",
                "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "non-hex trace id",
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            ),
            (
                "non-hex flags",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            ),
            (
                "wrong separators",
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            ),
            (
                "short trace id",
                "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            ),
            (
                "later version, junk after",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            ),
            (
                "multibyte",
                "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
            ),
        ];
        for (why, header) in cases {
            assert_eq!(TraceParent::parse(header), None, "{why}: {header:?}");
        }
    }

    #[test]
    fn later_versions_are_read_as_far_as_00_goes() {
        let plain = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
        let longer = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-comes-next";
        for header in [plain, longer] {
            let tp = TraceParent::parse(header).unwrap_or_else(|| panic!("{header}"));
            // Printed as the version this code speaks, with only the sampled flag.
            assert_eq!(
                tp.to_string(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            );
        }
    }

    #[test]
    fn a_root_is_valid_and_sampled_and_a_child_keeps_the_trace() {
        let root = TraceParent::root();
        assert_eq!(TraceParent::parse(&root.to_string()), Some(root));
        assert_eq!(root.flags(), SAMPLED);
        assert_ne!(TraceParent::root().trace_id(), root.trace_id());
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_eq!(child.flags(), root.flags());
        assert_ne!(child.parent_id(), root.parent_id());
        assert_eq!(TraceParent::parse(&child.to_string()), Some(child));
        assert_eq!(TraceParent::from_parts([0; 16], [1; 8], 1), None);
        assert_eq!(TraceParent::from_parts([1; 16], [0; 8], 1), None);
    }
}
