//! How a buffer's elements are spread over ranks: each element has one
//! owner rank. Pure arithmetic, with no MPI: a one-process program can
//! plan a distribution, and the checks run in every build.

use std::ops::Range;

use crate::error::{Error, Result};

/// A rule that gives each element of a buffer one owner rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distribution {
    /// Contiguous blocks, one a rank in rank order; sizes differ by at most
    /// one element (the first ranks get the extra ones).
    Block,
    /// Blocks of `block` elements dealt to the ranks in turn.
    BlockCyclic {
        /// Elements a block.
        block: usize,
    },
    /// A `rows × cols` matrix (row-major) cut into contiguous blocks over a
    /// `grid.0 × grid.1` grid of ranks (rank `r` at grid row `r / grid.1`,
    /// column `r % grid.1`).
    Block2d {
        /// Rows of the matrix.
        rows: usize,
        /// Columns of the matrix.
        cols: usize,
        /// Ranks down and across.
        grid: (usize, usize),
    },
    /// The owner of every element, given.
    Explicit(Vec<usize>),
}

/// A [`Distribution`] of a buffer of `len` elements over `ranks` ranks,
/// checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistMap {
    len: usize,
    ranks: usize,
    dist: Distribution,
}

impl DistMap {
    /// Checks `dist` for a buffer (named `buffer` in errors) of `len`
    /// elements over `ranks` ranks: [`Error::Distribution`] for an explicit
    /// map over another length or naming a rank past the cluster, a block
    /// of zero, or a 2-D grid that is not the cluster or a matrix that is
    /// not the buffer.
    pub fn new(buffer: &str, len: usize, ranks: usize, dist: Distribution) -> Result<DistMap> {
        let bad = |rank: usize, message: String| Error::Distribution {
            buffer: buffer.to_owned(),
            rank,
            message,
        };
        if ranks == 0 {
            return Err(bad(0, "a cluster of 0 ranks".to_owned()));
        }
        match &dist {
            Distribution::Block => {}
            Distribution::BlockCyclic { block } if *block == 0 => {
                return Err(bad(0, "a block-cyclic block of 0 elements".to_owned()));
            }
            Distribution::BlockCyclic { .. } => {}
            Distribution::Block2d { rows, cols, grid } => {
                if rows * cols != len {
                    return Err(bad(
                        0,
                        format!(
                            "a {rows} × {cols} matrix is {} elements; the buffer has {len}",
                            rows * cols
                        ),
                    ));
                }
                if grid.0 * grid.1 != ranks || grid.0 == 0 {
                    return Err(bad(
                        0,
                        format!(
                            "a {} × {} grid of ranks for a cluster of {ranks}",
                            grid.0, grid.1
                        ),
                    ));
                }
            }
            Distribution::Explicit(owners) => {
                if owners.len() != len {
                    return Err(bad(
                        0,
                        format!("a map over {} elements for a buffer of {len}", owners.len()),
                    ));
                }
                if let Some((i, &r)) = owners.iter().enumerate().find(|(_, r)| **r >= ranks) {
                    return Err(bad(
                        r,
                        format!(
                            "element {i} is given to rank {r}; the cluster has ranks 0 to {}",
                            ranks - 1
                        ),
                    ));
                }
            }
        }
        Ok(DistMap { len, ranks, dist })
    }

    /// Elements of the buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ranks it is spread over.
    pub fn ranks(&self) -> usize {
        self.ranks
    }

    /// The rule.
    pub fn distribution(&self) -> &Distribution {
        &self.dist
    }

    /// The rank that owns element `i` (`i < len`).
    pub fn owner(&self, i: usize) -> usize {
        match &self.dist {
            Distribution::Block => {
                let (base, extra) = (self.len / self.ranks, self.len % self.ranks);
                // The first `extra` ranks hold base + 1.
                let big = extra * (base + 1);
                if i < big {
                    i / (base + 1)
                } else {
                    extra + (i - big) / base.max(1)
                }
            }
            Distribution::BlockCyclic { block } => (i / block) % self.ranks,
            Distribution::Block2d { rows, cols, grid } => {
                let (r, c) = (i / cols, i % cols);
                let gr = r * grid.0 / rows;
                let gc = c * grid.1 / cols;
                gr * grid.1 + gc
            }
            Distribution::Explicit(owners) => owners[i],
        }
    }

    /// The elements `rank` owns, as ranges in order.
    pub fn owned(&self, rank: usize) -> Vec<Range<usize>> {
        let mut runs: Vec<Range<usize>> = Vec::new();
        for i in 0..self.len {
            if self.owner(i) != rank {
                continue;
            }
            match runs.last_mut() {
                Some(r) if r.end == i => r.end = i + 1,
                _ => runs.push(i..i + 1),
            }
        }
        runs
    }

    /// How many elements `rank` owns.
    pub fn count(&self, rank: usize) -> usize {
        self.owned(rank).iter().map(|r| r.len()).sum()
    }

    /// A digest of the map, the same on every rank that built the same
    /// one (ranks compare it to find one that disagrees).
    pub fn digest(&self) -> u64 {
        let mut h = crate::hash::Fnv::new();
        h.write(&(self.len as u64).to_le_bytes());
        h.write(&(self.ranks as u64).to_le_bytes());
        h.write(format!("{:?}", self.dist).as_bytes());
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(m: &DistMap) -> Vec<usize> {
        (0..m.len()).map(|i| m.owner(i)).collect()
    }

    #[test]
    fn each_rule_gives_every_element_one_owner() {
        let block = DistMap::new("x", 10, 3, Distribution::Block).unwrap();
        assert_eq!(owners(&block), [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
        assert_eq!(block.owned(1), vec![4..7]);
        let few = DistMap::new("x", 2, 4, Distribution::Block).unwrap();
        assert_eq!(owners(&few), [0, 1]);
        let cyclic = DistMap::new("x", 7, 2, Distribution::BlockCyclic { block: 2 }).unwrap();
        assert_eq!(owners(&cyclic), [0, 0, 1, 1, 0, 0, 1]);
        assert_eq!(cyclic.owned(0), vec![0..2, 4..6]);
        let grid = DistMap::new(
            "m",
            4 * 4,
            4,
            Distribution::Block2d {
                rows: 4,
                cols: 4,
                grid: (2, 2),
            },
        )
        .unwrap();
        assert_eq!(
            owners(&grid),
            [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]
        );
        let explicit = DistMap::new("x", 3, 2, Distribution::Explicit(vec![1, 0, 1])).unwrap();
        assert_eq!(owners(&explicit), [1, 0, 1]);
        assert_eq!(explicit.count(1), 2);
    }

    #[test]
    fn a_wrong_distribution_is_an_error_naming_the_buffer_and_the_rank() {
        let err = DistMap::new("halo", 4, 2, Distribution::Explicit(vec![0, 1, 1])).unwrap_err();
        assert!(
            matches!(&err, Error::Distribution { buffer, .. } if buffer == "halo"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("a map over 3 elements for a buffer of 4"),
            "{err}"
        );
        let err = DistMap::new("halo", 2, 2, Distribution::Explicit(vec![0, 5])).unwrap_err();
        assert!(matches!(err, Error::Distribution { rank: 5, .. }), "{err}");
        assert!(DistMap::new("x", 4, 2, Distribution::BlockCyclic { block: 0 }).is_err());
        let grid = Distribution::Block2d {
            rows: 2,
            cols: 2,
            grid: (2, 2),
        };
        assert!(DistMap::new("x", 4, 3, grid.clone()).is_err());
        assert!(DistMap::new("x", 5, 4, grid).is_err());
        assert!(DistMap::new("x", 5, 0, Distribution::Block).is_err());
    }

    #[test]
    fn the_digest_tells_maps_apart() {
        let a = DistMap::new("x", 8, 2, Distribution::Block).unwrap();
        let b = DistMap::new("x", 8, 2, Distribution::BlockCyclic { block: 1 }).unwrap();
        assert_eq!(a.digest(), a.clone().digest());
        assert_ne!(a.digest(), b.digest());
    }
}
