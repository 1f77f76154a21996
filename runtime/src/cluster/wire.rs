//! How a message names the buffer version it carries.
//!
//! Every message's tag comes from (buffer, version). Messages from one
//! rank to another match in the order they were sent, and ranks post their
//! receives in the common order, so a message meets the receive it was
//! sent for even when two share a tag; what a name adds is a check.
//!
//! Where MPI's tag range is wide (Open MPI's reaches 2^31 - 1),
//! the tag alone is that name: two messages a pair of ranks has in flight
//! at once share a tag with odds of about one in a billion, and the
//! payload goes alone, as a hand-written program's would. Past MPI's
//! small-message fast path that makes no difference; just inside it, it
//! does: Open MPI sends up to 256 bytes inline, and a 256-byte payload
//! with 16 bytes more took half as long again a message (a ping-pong of
//! both sizes in one job).
//!
//! Where the range is narrow (the standard promises only 32,767), or when
//! asked (`PEL_CLUSTER_CHECK=1`, on every rank), each message also starts
//! with a header naming its buffer and version, and the receiver checks
//! it. Either way the receiver checks the message's length.

/// Bytes of the header: buffer id and version, little-endian.
const HEADER: usize = 16;

/// The tags MPI guarantees (`MPI_TAG_UB` is at least 32,767).
const NARROW: u64 = 32_767;

/// Tags from which the tag alone names a message's buffer version.
const WIDE: u64 = 1 << 30;

/// A job's message format: the same on every rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wire {
    /// Tags `0..space` name buffer versions; `space` itself is pel's own.
    space: u64,
    /// Bytes before the payload: 0, or [`HEADER`].
    header: usize,
}

impl Wire {
    /// The format for MPI's largest tag `tag_ub`: headers where tags are
    /// narrow, or where `check` asks for them.
    pub(super) fn new(tag_ub: i32, check: bool) -> Wire {
        let space = u64::try_from(tag_ub).unwrap_or(0).max(NARROW);
        let header = if check || space < WIDE { HEADER } else { 0 };
        Wire { space, header }
    }

    /// The tag of `buffer`'s `version`.
    pub(super) fn tag(self, buffer: u64, version: u64) -> i32 {
        // Two words mixed (SplitMix64's finaliser), then scaled into range
        // by a multiply: every message hashes its tag, so no byte loop and
        // no division.
        let mut h = buffer.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ version;
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
        ((u128::from(h) * u128::from(self.space)) >> 64) as i32
    }

    /// A tag no buffer version has, for pel's own messages.
    pub(super) fn own_tag(self) -> i32 {
        self.space as i32
    }

    /// Whether messages carry a header.
    pub(super) fn checked(self) -> bool {
        self.header > 0
    }

    /// Where the payload starts in a message.
    pub(super) fn header(self) -> usize {
        self.header
    }

    /// Writes the header of `buffer`'s `version` into `msg`, if it has one.
    pub(super) fn stamp(self, msg: &mut [u8], buffer: u64, version: u64) {
        if self.header > 0 {
            msg[..8].copy_from_slice(&buffer.to_le_bytes());
            msg[8..HEADER].copy_from_slice(&version.to_le_bytes());
        }
    }

    /// What a message of `got` bytes (`msg`) says it is, against `want`:
    /// `None` when it is `buffer`'s `version` of `want` bytes (as far as
    /// the format can tell), else what it said instead: the buffer and
    /// version of its header (or those asked for, without one) and its
    /// length.
    pub(super) fn crossed(
        self,
        msg: &[u8],
        got: usize,
        want: usize,
        (buffer, version): (u64, u64),
    ) -> Option<(u64, u64, usize)> {
        let named = if self.header > 0 && got >= HEADER {
            let word = |i: usize| u64::from_le_bytes(msg[i..i + 8].try_into().expect("8 bytes"));
            (word(0), word(8))
        } else {
            (buffer, version)
        };
        (got != want || named != (buffer, version)).then_some((named.0, named.1, got))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_tags_carry_no_header_and_narrow_ones_do() {
        let wide = Wire::new(i32::MAX, false);
        assert!(!wide.checked());
        assert_eq!(wide.header(), 0);
        assert!(Wire::new(i32::MAX, true).checked());
        for ub in [32_767, 1 << 20, (1 << 30) - 2] {
            assert_eq!(Wire::new(ub, false).header(), HEADER, "tag_ub {ub}");
        }
        // An MPI that reports less than the standard's least is held to it.
        assert_eq!(Wire::new(100, false).own_tag(), 32_767);
    }

    #[test]
    fn tags_stay_in_range_differ_by_version_and_spare_pels_own() {
        for ub in [32_767, i32::MAX] {
            let w = Wire::new(ub, false);
            let tags: Vec<i32> = (0..64).map(|v| w.tag(3, v)).collect();
            assert!(tags.iter().all(|&t| (0..w.own_tag()).contains(&t)));
            let distinct: std::collections::HashSet<_> = tags.iter().collect();
            assert!(distinct.len() > 60, "tag_ub {ub}");
        }
    }

    #[test]
    fn a_header_names_its_buffer_and_a_wrong_one_or_length_is_crossed() {
        let w = Wire::new(i32::MAX, true);
        let mut msg = vec![0xAAu8; HEADER + 8];
        w.stamp(&mut msg, 7, 3);
        let n = msg.len();
        assert_eq!(w.crossed(&msg, n, n, (7, 3)), None);
        assert_eq!(w.crossed(&msg, n, n, (7, 4)), Some((7, 3, n)));
        assert_eq!(w.crossed(&msg, n, n, (8, 3)), Some((7, 3, n)));
        assert_eq!(w.crossed(&msg, n - 1, n, (7, 3)), Some((7, 3, n - 1)));
        // Without a header only the length tells.
        let bare = Wire::new(i32::MAX, false);
        let mut plain = vec![0xAAu8; 8];
        bare.stamp(&mut plain, 7, 3);
        assert_eq!(plain, vec![0xAAu8; 8], "no header written");
        assert_eq!(bare.crossed(&plain, 8, 8, (7, 3)), None);
        assert_eq!(bare.crossed(&plain, 4, 8, (7, 3)), Some((7, 3, 4)));
    }
}
