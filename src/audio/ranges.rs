//! The byte ranges a blackout silenced in one file, for its journal record.

use std::fmt;
use std::ops::Range;

/// Most ranges a [`RangeSet`] keeps unless told otherwise. A blackout over a
/// recorder writing sequentially silences one growing range; a few more come
/// from rewrites. 64 ranges print in at most about 2.5 KB, which a journal
/// line can carry.
pub const DEFAULT_MAX_RANGES: usize = 64;

/// Sorted, disjoint, merged byte ranges (what a blackout silenced in one
/// file), with a bound on how many it keeps.
///
/// Past the bound, the two ranges closest together are joined, so the set
/// still covers every byte silenced but also the gap between them, and
/// [`RangeSet::is_exact`] turns false: the journal then says "at least these
/// bytes, and some next to them", never less than what was silenced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeSet {
    /// Sorted by start, non-empty, neither overlapping nor touching.
    ranges: Vec<Range<u64>>,
    max: usize,
    exact: bool,
}

impl Default for RangeSet {
    fn default() -> Self {
        RangeSet::new()
    }
}

impl RangeSet {
    /// An empty set keeping at most [`DEFAULT_MAX_RANGES`] ranges.
    pub fn new() -> RangeSet {
        RangeSet::with_max_ranges(DEFAULT_MAX_RANGES)
    }

    /// An empty set keeping at most `max` ranges (at least 1).
    pub fn with_max_ranges(max: usize) -> RangeSet {
        RangeSet { ranges: Vec::new(), max: max.max(1), exact: true }
    }

    /// Adds `r`, merging it with every range it overlaps or touches. An empty
    /// range changes nothing.
    pub fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        // The first range that ends at or after r.start (touching counts) and
        // the first that starts after r.end: everything between merges with r.
        let first = self.ranges.partition_point(|x| x.end < r.start);
        let last = self.ranges.partition_point(|x| x.start <= r.end);
        if first == last {
            self.ranges.insert(first, r);
        } else {
            let start = r.start.min(self.ranges[first].start);
            let end = r.end.max(self.ranges[last - 1].end);
            self.ranges[first] = start..end;
            self.ranges.drain(first + 1..last);
        }
        if self.ranges.len() > self.max {
            self.join_closest();
        }
    }

    /// Joins the two neighbours with the smallest gap (the earliest of equal
    /// gaps), giving up the fewest bytes of precision.
    fn join_closest(&mut self) {
        let closest = self.ranges.windows(2).enumerate().min_by_key(|(_, w)| w[1].start - w[0].end).map(|(i, _)| i);
        if let Some(i) = closest {
            let end = self.ranges[i + 1].end;
            self.ranges[i].end = end;
            self.ranges.remove(i + 1);
            self.exact = false;
        }
    }

    /// The ranges, in order.
    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.ranges.iter().cloned()
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Bytes covered. Disjoint ranges of u64 offsets: the sum cannot overflow.
    pub fn total_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// Whether the set is exactly the union of what was inserted (false once
    /// the bound made it join ranges across a gap).
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// Whether byte `offset` is covered.
    pub fn contains(&self, offset: u64) -> bool {
        let i = self.ranges.partition_point(|x| x.end <= offset);
        self.ranges.get(i).is_some_and(|x| x.start <= offset)
    }
}

/// `0-4096,8192-12000`: half-open, decimal; empty for an empty set.
impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}-{}", r.start, r.end)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn set(ranges: &[Range<u64>]) -> RangeSet {
        let mut s = RangeSet::new();
        for r in ranges {
            s.insert(r.clone());
        }
        s
    }

    #[test]
    fn display_is_half_open_decimal() {
        assert_eq!(set(&[8192..12000, 0..4096]).to_string(), "0-4096,8192-12000");
        assert_eq!(RangeSet::new().to_string(), "");
    }

    #[test]
    fn adjacent_and_overlapping_ranges_merge() {
        let s = set(&[0..10, 10..20, 30..40, 35..50, 5..6, 60..60]);
        assert_eq!(s.iter().collect::<Vec<_>>(), [0..20, 30..50]);
        assert_eq!((s.len(), s.total_bytes(), s.is_exact()), (2, 40, true));
        let s = set(&[0..10, 20..30, 40..50, 9..41]);
        assert_eq!(s.to_string(), "0-50");
        assert!(set(&[]).is_empty());
        let mut all = RangeSet::new();
        all.insert(0..u64::MAX);
        assert!(all.contains(u64::MAX - 1) && !all.contains(u64::MAX));
        assert_eq!(all.total_bytes(), u64::MAX);
    }

    #[test]
    fn the_bound_joins_the_closest_neighbours() {
        let mut s = RangeSet::with_max_ranges(3);
        for r in [0..1, 10..11, 100..101, 103..104] {
            s.insert(r);
        }
        assert_eq!(s.to_string(), "0-1,10-11,100-104");
        assert!(!s.is_exact());
        assert!(!s.contains(5) && s.contains(102));
    }

    /// Inserts over a small space, so a set of bytes is the reference.
    fn small_ranges() -> impl Strategy<Value = Vec<Range<u64>>> {
        proptest::collection::vec((0u64..200, 0u64..20).prop_map(|(s, l)| s..s + l), 0..40)
    }

    proptest! {
        #[test]
        fn an_unbounded_set_is_exactly_the_union(ranges in small_ranges()) {
            let mut s = RangeSet::with_max_ranges(usize::MAX);
            let mut bytes = BTreeSet::new();
            for r in &ranges {
                s.insert(r.clone());
                bytes.extend(r.clone());
            }
            let kept: Vec<_> = s.iter().collect();
            for w in kept.windows(2) {
                prop_assert!(w[0].end < w[1].start, "sorted, disjoint, not touching: {:?}", kept);
            }
            prop_assert!(kept.iter().all(|r| r.start < r.end));
            prop_assert!(s.is_exact());
            prop_assert_eq!(s.total_bytes(), bytes.len() as u64);
            for at in 0..230 {
                prop_assert_eq!(s.contains(at), bytes.contains(&at), "byte {}", at);
            }
        }

        #[test]
        fn a_bounded_set_covers_the_union_within_its_bound(ranges in small_ranges(), max in 1usize..6) {
            let mut s = RangeSet::with_max_ranges(max);
            let mut exact = RangeSet::with_max_ranges(usize::MAX);
            for r in &ranges {
                s.insert(r.clone());
                exact.insert(r.clone());
            }
            prop_assert!(s.len() <= max);
            if exact.len() > max {
                prop_assert!(!s.is_exact());
            }
            for at in 0..230 {
                prop_assert!(!exact.contains(at) || s.contains(at), "byte {} silenced but not recorded", at);
            }
            if s.is_exact() {
                prop_assert_eq!(s.iter().collect::<Vec<_>>(), exact.iter().collect::<Vec<_>>());
            }
        }
    }
}
