//! The CPU implementations' shared loops: rayon over chunks, blocks and
//! rows, and an f32 sum in interleaved lanes.

use std::ops::Range;

use rayon::prelude::*;

/// Calls `f` on each `grain`-element chunk of `out` with the matching
/// chunk of `input`, in parallel.
#[inline]
pub(crate) fn par_zip<T: Send, U: Sync>(
    out: &mut [T],
    input: &[U],
    grain: usize,
    f: impl Fn(&mut [T], &[U]) + Send + Sync,
) {
    out.par_chunks_mut(grain)
        .zip(input.par_chunks(grain))
        .for_each(|(o, i)| f(o, i));
}

/// Copies `src` into `dst` in parallel, `grain` elements a task.
pub(crate) fn copy_par<T: Copy + Send + Sync>(src: &[T], dst: &mut [T], grain: usize) {
    par_zip(dst, src, grain, |d, s| d.copy_from_slice(s));
}

/// Sets every element of `dst` to `value` in parallel, `grain` a task.
pub(crate) fn fill_par<T: Copy + Send + Sync>(dst: &mut [T], value: T, grain: usize) {
    dst.par_chunks_mut(grain).for_each(|c| c.fill(value));
}

/// Calls `f` with each item of `outs` and the range of its block: item `g`
/// covers elements `g·block..(g + 1)·block` of `n`, clamped (so items past
/// the end get an empty range); at least `min_len` items a task.
#[inline]
pub(crate) fn for_each_block<I: IndexedParallelIterator>(
    outs: I,
    n: usize,
    block: usize,
    min_len: usize,
    f: impl Fn(I::Item, Range<usize>) + Send + Sync,
) {
    outs.enumerate().with_min_len(min_len).for_each(|(g, out)| {
        let lo = (g * block).min(n);
        let hi = (lo + block).min(n);
        f(out, lo..hi)
    });
}

/// Calls `f` on each row of `cols` elements of `y` with the same row of
/// `x`, the first `rows` rows, in tasks of at least 16 Ki elements (whole
/// rows, enough of them to amortise rayon's cost when rows are short).
#[inline]
pub(crate) fn for_each_row(
    y: &mut [f32],
    x: &[f32],
    rows: usize,
    cols: usize,
    f: impl Fn(&mut [f32], &[f32]) + Send + Sync,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    y[..rows * cols]
        .par_chunks_mut(cols)
        .zip(x[..rows * cols].par_chunks(cols))
        .with_min_len((1 << 14) / cols + 1)
        .for_each(|(y, x)| f(y, x));
}

/// `Σ f(x)` in eight interleaved lanes: vectorisable, and its rounding error
/// grows with `len/8` rather than `len`.
#[inline(always)]
pub(crate) fn lanes_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let tail: f32 = it.remainder().iter().map(|&v| f(v)).sum();
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7])) + tail
}
