//! transpose: `B = Aᵀ` for a row-major m×n f32 matrix A (B is n×m).
//!
//! Per element: no floating-point operations, 8 bytes moved (read A, write
//! B). Memory-bound; the art is in keeping both the reads and the writes
//! contiguous.
//!
//! The GPU shader moves 16×16 tiles through workgroup memory (padded to 17
//! columns against bank conflicts), so reads and writes are both coalesced.
//! The CPU side is cache-blocked: it fills B in tiles of 16 rows by 64
//! columns, whose source (64 rows by 16 columns of A) stays in the L1 cache
//! while it is used, moving 8×8 blocks through registers; rayon runs blocks
//! of rows of B, or, for a B of few rows, segments of all its rows.

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result};
use rayon::prelude::*;

use crate::launch::{builder, one_kernel};
use crate::uniform::wgsl_struct;
use crate::{ensure, u32_len};

/// Edge of the square tile one workgroup moves.
pub const TILE: usize = 16;

/// Rows of B per CPU block (columns of A).
const BLOCK_ROWS: usize = 16;
/// Columns of B per CPU tile (rows of A): 64 rows of A's cache lines.
const BLOCK_COLS: usize = 64;
/// Elements a rayon task should move at the least.
const TASK_ELEMS: usize = 1 << 14;

wgsl_struct! {
    transpose_params => Params;
    /// The shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct TransposeParams {
        /// Rows of A, columns of B.
        pub m: u32,
        /// Columns of A, rows of B.
        pub n: u32,
        /// Tiles across a row of A: `ceil(n / 16)`.
        pub tiles_n: u32,
        /// Tiles in all: `ceil(m / 16) · ceil(n / 16)`.
        pub tiles: u32,
    }
}

/// The WGSL source.
pub const WGSL: &str = concat!(
    include_str!("../../shaders/transpose.wgsl"),
    transpose_params!(),
);

/// Copies column `j` of `a` (n columns), rows `i0..i0 + dst.len()`, into `dst`.
#[inline]
fn column(a: &[f32], n: usize, j: usize, i0: usize, dst: &mut [f32]) {
    if dst.is_empty() {
        return;
    }
    for (d, s) in dst.iter_mut().zip(a[i0 * n + j..].iter().step_by(n)) {
        *d = *s;
    }
}

/// Fills rows `j0..j0 + rows.len()` of B from columns `i0..i0 + w` on,
/// where `rows[r]` is row `j0 + r`'s part (all `w` long). Tiles of 64
/// columns of B (64 rows of A, whose cache lines stay in L1 while they are
/// used), moved in 8×8 blocks: eight contiguous reads of A, then eight
/// contiguous writes of B.
fn fill(a: &[f32], n: usize, j0: usize, i0: usize, rows: &mut [&mut [f32]]) {
    let h = rows.len();
    let w = rows.first().map_or(0, |r| r.len());
    for t0 in (0..w).step_by(BLOCK_COLS) {
        let t1 = (t0 + BLOCK_COLS).min(w);
        let mut r0 = 0;
        while r0 + 8 <= h {
            let mut t = t0;
            while t + 8 <= t1 {
                let mut block = [[0.0f32; 8]; 8];
                for (k, b) in block.iter_mut().enumerate() {
                    let s = (i0 + t + k) * n + j0 + r0;
                    b.copy_from_slice(&a[s..s + 8]);
                }
                for (c, row) in rows[r0..r0 + 8].iter_mut().enumerate() {
                    for (d, b) in row[t..t + 8].iter_mut().zip(&block) {
                        *d = b[c];
                    }
                }
                t += 8;
            }
            for (c, row) in rows[r0..r0 + 8].iter_mut().enumerate() {
                column(a, n, j0 + r0 + c, i0 + t, &mut row[t..t1]);
            }
            r0 += 8;
        }
        for (c, row) in rows[r0..].iter_mut().enumerate() {
            column(a, n, j0 + r0 + c, i0 + t0, &mut row[t0..t1]);
        }
    }
}

/// `b = aᵀ`, with `a` m×n and `b` n×m, both row-major.
fn transpose_into(a: &[f32], b: &mut [f32], m: usize, n: usize) {
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    if n.div_ceil(BLOCK_ROWS) >= 4 * threads {
        // Many rows of B: blocks of 16 of them, each a contiguous slice.
        let blocks_per_task = TASK_ELEMS.div_ceil(BLOCK_ROWS * m);
        b.par_chunks_mut(BLOCK_ROWS * m)
            .enumerate()
            .with_min_len(blocks_per_task)
            .for_each(|(blk, block)| {
                let mut rows: [&mut [f32]; BLOCK_ROWS] = Default::default();
                let mut h = 0;
                for (slot, row) in rows.iter_mut().zip(block.chunks_mut(m)) {
                    *slot = row;
                    h += 1;
                }
                fill(a, n, blk * BLOCK_ROWS, 0, &mut rows[..h]);
            });
        return;
    }
    // Few rows of B (A is tall and narrow): split the columns of B into
    // segments, each a task holding its piece of every row of B.
    let seg = m
        .div_ceil(4 * threads)
        .max(TASK_ELEMS.div_ceil(n))
        .next_multiple_of(BLOCK_COLS)
        .min(m);
    let mut tasks: Vec<Vec<&mut [f32]>> = (0..m.div_ceil(seg))
        .map(|_| Vec::with_capacity(n))
        .collect();
    for row in b.chunks_mut(m) {
        for (task, piece) in tasks.iter_mut().zip(row.chunks_mut(seg)) {
            task.push(piece);
        }
    }
    tasks
        .into_par_iter()
        .enumerate()
        .for_each(|(s, mut pieces)| fill(a, n, 0, s * seg, &mut pieces));
}

one_kernel! {
    /// The transpose kernel.
    Transpose = build();
    /// `b = aᵀ` at `target`, where `a` is m×n and `b` n×m, row-major.
    run,
    /// Submits `b = aᵀ` at `target` and returns its task at once.
    submit(a: &Buffer<f32>, b: &Buffer<f32>, m: usize, n: usize) => [a, b], Self::params(a, b, m, n);
}

fn build() -> Result<Kernel> {
    builder::<TransposeParams, (Read<f32>, ReadWrite<f32>)>("transpose", WGSL, |(a, b), p| {
        let (m, n) = (p.m as usize, p.n as usize);
        transpose_into(&a[..m * n], &mut b[..m * n], m, n);
    })
    .workgroups(|p, _| p.tiles as u64)
    .cost(|p, _| p.m as u64 * p.n as u64)
    .build()
}

impl Transpose {
    /// The params of an m×n transpose, checked against the buffers.
    pub fn params(a: &Buffer<f32>, b: &Buffer<f32>, m: usize, n: usize) -> Result<TransposeParams> {
        let elems = m.checked_mul(n);
        for (arg, buf, rows, cols) in [("a", a, m, n), ("b", b, n, m)] {
            ensure(elems == Some(buf.len()), "transpose", arg, || {
                format!(
                    "{arg} must be {rows}×{cols} = {} elements for m={m}, n={n}, but has {}",
                    rows as u128 * cols as u128,
                    buf.len()
                )
            })?;
        }
        u32_len("transpose", "a", a.len())?;
        let tiles_n = n.div_ceil(TILE);
        // m·n fits in u32 (just checked), so the tile count does too.
        let tiles = m.div_ceil(TILE) * tiles_n;
        Ok(TransposeParams {
            m: u32_len("transpose", "m", m)?,
            n: u32_len("transpose", "n", n)?,
            tiles_n: tiles_n as u32,
            tiles: u32_len("transpose", "a", tiles)?,
        })
    }
}

/// The serial reference: `aᵀ` for a row-major m×n `a`.
pub fn reference(a: &[f32], m: usize, n: usize) -> Vec<f32> {
    let mut b = Vec::with_capacity(m * n);
    for j in 0..n {
        for i in 0..m {
            b.push(a[i * n + j]);
        }
    }
    b
}
