//! The radix sort's CPU side: the multi-pass kernels' histogram and
//! scatter, and the whole sort in one call (LSD on bytes, serial below
//! [`SERIAL_BELOW`] keys, parallel above).

use rayon::prelude::*;

use super::{SortParams, TILE};

/// The digit of `key` at `shift`, of `R` values (a power of two).
#[inline]
fn digit<const R: usize>(key: u32, shift: u32) -> usize {
    ((key >> shift) as usize) & (R - 1)
}

/// Tiles per rayon task: a few tasks per thread, for balance.
fn tiles_per_task(tiles: usize) -> usize {
    let tasks = rayon::current_num_threads().max(1) * 4;
    tiles.div_ceil(tasks).max(1)
}

/// Per-digit counts of `keys`. Four sets of counters, used in turn, so that
/// runs of one digit do not wait on each other's increments.
fn digit_counts<const R: usize>(keys: &[u32], shift: u32) -> [u32; R] {
    let mut sets = [[0u32; R]; 4];
    let mut quads = keys.chunks_exact(4);
    for q in &mut quads {
        for (set, &k) in sets.iter_mut().zip(q) {
            set[digit::<R>(k, shift)] += 1;
        }
    }
    for &k in quads.remainder() {
        sets[0][digit::<R>(k, shift)] += 1;
    }
    let mut total = [0u32; R];
    for set in &sets {
        for (t, c) in total.iter_mut().zip(set) {
            *t += c;
        }
    }
    total
}

/// The histogram pass on the CPU: `hist[d · tiles + t]` = keys of tile `t`
/// with digit `d`. Each task fills its own tiles' stretch of every digit's
/// row.
pub(super) fn histogram_cpu<const R: usize>(src: &[u32], hist: &mut [u32], p: &SortParams) {
    let n = (p.n as usize).min(src.len());
    let tiles = (p.tiles as usize).max(1);
    let shift = p.shift & 31;
    let per_task = tiles_per_task(tiles);
    let tasks = tiles.div_ceil(per_task);
    let mut parts: Vec<Vec<&mut [u32]>> = (0..tasks).map(|_| Vec::with_capacity(R)).collect();
    for row in hist.chunks_mut(tiles).take(R) {
        for (part, piece) in parts.iter_mut().zip(row.chunks_mut(per_task)) {
            part.push(piece);
        }
    }
    parts
        .into_par_iter()
        .enumerate()
        .for_each(|(task, mut rows)| {
            let first = task * per_task;
            for (j, tile) in (first..(first + per_task).min(tiles)).enumerate() {
                let lo = (tile * TILE).min(n);
                let hi = (lo + TILE).min(n);
                let counts = digit_counts::<R>(&src[lo..hi], shift);
                for (row, &c) in rows.iter_mut().zip(&counts) {
                    if let Some(h) = row.get_mut(j) {
                        *h = c;
                    }
                }
            }
        });
}

/// Cuts `out` into consecutive runs of the given lengths and deals them to
/// tasks: `runs[task][digit]`. The lengths are in output order, digit-major.
fn deal<'a>(
    mut out: &'a mut [u32],
    lens: &[usize],
    tasks: usize,
    radix: usize,
) -> Vec<Vec<&'a mut [u32]>> {
    let mut runs: Vec<Vec<&mut [u32]>> = (0..tasks).map(|_| Vec::with_capacity(radix)).collect();
    for (i, &len) in lens.iter().enumerate() {
        let len = len.min(out.len());
        let (run, rest) = std::mem::take(&mut out).split_at_mut(len);
        runs[i % tasks].push(run);
        out = rest;
    }
    runs
}

/// Tiles a CPU task moves at once, each with its own cursors: independent
/// chains of cursor updates, where one tile alone waits on its own
/// increments whenever neighbouring keys share a digit.
const INTERLEAVE: usize = 4;

/// The scatter pass on the CPU: each key (and value) of tile `t` with digit
/// `d` goes to `offsets[d · tiles + t]` onwards, in input order. Each task
/// takes a stretch of tiles, whose keys of one digit fill one contiguous
/// range of the output; the ranges of all tasks are disjoint slices of it.
/// Offsets that do not partition the output at the tasks' boundaries (not
/// what the scan of this pass's histogram gives) leave it unwritten.
pub(super) fn scatter_cpu<const R: usize>(
    p: &SortParams,
    offsets: &[u32],
    src: &[u32],
    dst: &mut [u32],
    vals: Option<(&[u32], &mut [u32])>,
) {
    let n = (p.n as usize).min(src.len()).min(dst.len());
    let tiles = (p.tiles as usize).max(1);
    let shift = p.shift & 31;
    let per_task = tiles_per_task(tiles);
    let tasks = tiles.div_ceil(per_task);

    // The first slot of (digit d, tile t); tile `tiles` is the digit's end.
    let start = |d: usize, tile: usize| -> Option<usize> {
        if tile < tiles {
            offsets.get(d * tiles + tile).map(|&o| o as usize)
        } else if d + 1 < R {
            offsets.get((d + 1) * tiles).map(|&o| o as usize)
        } else {
            Some(n)
        }
    };
    let mut lens = Vec::with_capacity(R * tasks);
    let mut at = 0;
    for d in 0..R {
        for t in 0..tasks {
            let end = ((t + 1) * per_task).min(tiles);
            match (start(d, t * per_task), start(d, end)) {
                (Some(s), Some(e)) if s == at && s <= e && e <= n => {
                    lens.push(e - s);
                    at = e;
                }
                _ => return,
            }
        }
    }
    if at != n {
        return;
    }

    // Task t's tiles, and where each tile's digit-d keys start in the
    // task's run of digit d.
    let task = |t: usize| {
        let tiles_of = t * per_task..((t + 1) * per_task).min(tiles);
        let origin: [usize; R] =
            std::array::from_fn(|d| start(d, tiles_of.start).unwrap_or_default());
        let starts: Vec<[usize; R]> = tiles_of
            .clone()
            .map(|tile| {
                std::array::from_fn(|d| start(d, tile).unwrap_or_default().wrapping_sub(origin[d]))
            })
            .collect();
        let keys = (tiles_of.start * TILE).min(n)..(tiles_of.end * TILE).min(n);
        (keys, starts)
    };
    let key_runs = deal(&mut dst[..n], &lens, tasks, R);
    match vals {
        None => key_runs.into_par_iter().enumerate().for_each(|(t, runs)| {
            let (keys, starts) = task(t);
            let Ok(mut runs) = runs.try_into() else {
                return;
            };
            let mut none: [&mut [u32]; R] = std::array::from_fn(|_| Default::default());
            scatter_task::<false, R>(&src[keys], &[], &mut runs, &mut none, &starts, shift);
        }),
        Some((src_vals, dst_vals)) => {
            if src_vals.len() < n || dst_vals.len() < n {
                return;
            }
            let val_runs = deal(&mut dst_vals[..n], &lens, tasks, R);
            key_runs
                .into_par_iter()
                .zip(val_runs)
                .enumerate()
                .for_each(|(t, (runs, vruns))| {
                    let (keys, starts) = task(t);
                    let (Ok(mut runs), Ok(mut vruns)) = (runs.try_into(), vruns.try_into()) else {
                        return;
                    };
                    let vals = &src_vals[keys.clone()];
                    scatter_task::<true, R>(
                        &src[keys], vals, &mut runs, &mut vruns, &starts, shift,
                    );
                });
        }
    }
}

/// Moves one task's keys (and, with `PAIRS`, their values) into its runs
/// of each digit: tile `j`'s keys of digit `d` from `runs[d][starts[j][d]]`
/// on, in order. `INTERLEAVE` tiles at a time, their keys taken in turn.
fn scatter_task<const PAIRS: bool, const R: usize>(
    keys: &[u32],
    vals: &[u32],
    runs: &mut [&mut [u32]; R],
    vruns: &mut [&mut [u32]; R],
    starts: &[[usize; R]],
    shift: u32,
) {
    let mut put = |cursor: &mut [usize; R], i: usize| {
        let k = keys[i];
        let d = digit::<R>(k, shift);
        let c = cursor[d];
        if let Some(slot) = runs[d].get_mut(c) {
            *slot = k;
        }
        if PAIRS {
            if let (Some(slot), Some(&v)) = (vruns[d].get_mut(c), vals.get(i)) {
                *slot = v;
            }
        }
        cursor[d] = c + 1;
    };
    for (g, group) in starts.chunks(INTERLEAVE).enumerate() {
        let lo = (g * INTERLEAVE * TILE).min(keys.len());
        let hi = (lo + INTERLEAVE * TILE).min(keys.len());
        let mut cursors = [[0usize; R]; INTERLEAVE];
        cursors[..group.len()].copy_from_slice(group);
        if hi - lo == INTERLEAVE * TILE && group.len() == INTERLEAVE {
            let [c0, c1, c2, c3] = &mut cursors;
            for i in lo..lo + TILE {
                put(c0, i);
                put(c1, i + TILE);
                put(c2, i + 2 * TILE);
                put(c3, i + 3 * TILE);
            }
        } else {
            for (w, cursor) in cursors.iter_mut().enumerate().take(group.len()) {
                let from = (lo + w * TILE).min(hi);
                for i in from..(from + TILE).min(hi) {
                    put(cursor, i);
                }
            }
        }
    }
}

/// Keys below which the CPU sort runs on one thread.
pub(crate) const SERIAL_BELOW: usize = 1 << 16;

/// The byte of `key` at byte position `b` (0 the lowest).
#[inline]
fn byte(key: u32, b: usize) -> usize {
    ((key >> (8 * b)) & 0xff) as usize
}

/// Counts of each byte value at each of the four byte positions.
fn byte_counts(keys: &[u32]) -> [[u32; 256]; 4] {
    let mut c = [[0u32; 256]; 4];
    for &k in keys {
        c[0][byte(k, 0)] += 1;
        c[1][byte(k, 1)] += 1;
        c[2][byte(k, 2)] += 1;
        c[3][byte(k, 3)] += 1;
    }
    c
}

/// The byte positions, lowest first, where the keys do not all agree.
fn varying(counts: &[[u32; 256]; 4], n: usize) -> Vec<usize> {
    (0..4)
        .filter(|&b| !counts[b].iter().any(|&c| c as usize == n))
        .collect()
}

/// Splits `out` into runs of `lens` (in order) and returns a writer per run.
fn runs<'a>(mut out: &'a mut [u32], lens: &[usize]) -> Vec<std::slice::IterMut<'a, u32>> {
    lens.iter()
        .map(|&len| {
            let len = len.min(out.len());
            let (run, rest) = std::mem::take(&mut out).split_at_mut(len);
            out = rest;
            run.iter_mut()
        })
        .collect()
}

/// As a fixed array of 256 writers (missing ones write nowhere).
fn by_byte(runs: Vec<std::slice::IterMut<'_, u32>>) -> [std::slice::IterMut<'_, u32>; 256] {
    let mut it = runs.into_iter();
    std::array::from_fn(|_| it.next().unwrap_or_default())
}

/// Moves each key (and value) to the writer of its byte at `b`, in order.
fn scatter_bytes<const PAIRS: bool>(
    keys: &[u32],
    vals: &[u32],
    out: &mut [std::slice::IterMut<'_, u32>; 256],
    out_vals: &mut [std::slice::IterMut<'_, u32>; 256],
    b: usize,
) {
    for (i, &k) in keys.iter().enumerate() {
        let d = byte(k, b);
        if let Some(slot) = out[d].next() {
            *slot = k;
        }
        if PAIRS {
            if let (Some(slot), Some(&v)) = (out_vals[d].next(), vals.get(i)) {
                *slot = v;
            }
        }
    }
}

/// One stable pass by byte `b` from `src` into `dst` on the rayon pool:
/// chunk `c` of `chunk` keys, whose byte counts are `counts[c]`, writes its
/// keys of byte value `d` into its own range of `dst` (after those of byte
/// values below `d`, and of earlier chunks with `d`).
fn partition<const PAIRS: bool>(
    src: &[u32],
    src_vals: &[u32],
    dst: &mut [u32],
    dst_vals: &mut [u32],
    b: usize,
    counts: &[[u32; 256]],
    chunk: usize,
) {
    let chunks = counts.len();
    let lens: Vec<usize> = (0..256 * chunks)
        .map(|i| counts[i % chunks][i / chunks] as usize)
        .collect();
    let mut key_runs: Vec<Vec<_>> = (0..chunks).map(|_| Vec::with_capacity(256)).collect();
    let mut val_runs: Vec<Vec<_>> = (0..chunks).map(|_| Vec::new()).collect();
    for (i, run) in runs(dst, &lens).into_iter().enumerate() {
        key_runs[i % chunks].push(run);
    }
    if PAIRS {
        for (i, run) in runs(dst_vals, &lens).into_iter().enumerate() {
            val_runs[i % chunks].push(run);
        }
    }
    key_runs
        .into_par_iter()
        .zip(val_runs)
        .zip(src.par_chunks(chunk.max(1)))
        .enumerate()
        .for_each(|(c, ((k, v), keys))| {
            let vals = src_vals.get(c * chunk..).unwrap_or_default();
            scatter_bytes::<PAIRS>(keys, vals, &mut by_byte(k), &mut by_byte(v), b);
        });
}

/// Copies `src` into `dst` on the rayon pool.
fn copy_par(src: &[u32], dst: &mut [u32]) {
    crate::par::copy_par(src, dst, 1 << 16);
}

/// LSD passes over `bytes` (lowest first) on one thread: the data starts in
/// `a` and ends in `b` when `into_b`, else in `a`. Bytes on which this
/// stretch of keys agrees are skipped.
fn lsd_serial<const PAIRS: bool>(
    a: &mut [u32],
    a_vals: &mut [u32],
    b: &mut [u32],
    b_vals: &mut [u32],
    bytes: &[usize],
    into_b: bool,
) {
    let n = a.len();
    let counts = byte_counts(a);
    let mut in_a = true;
    for &pos in bytes {
        if counts[pos].iter().any(|&c| c as usize == n) {
            continue;
        }
        let lens: Vec<usize> = counts[pos].iter().map(|&c| c as usize).collect();
        let (src, src_vals, dst, dst_vals) = if in_a {
            (&*a, &*a_vals, &mut *b, &mut *b_vals)
        } else {
            (&*b, &*b_vals, &mut *a, &mut *a_vals)
        };
        let mut out = by_byte(runs(dst, &lens));
        let mut out_vals = by_byte(if PAIRS {
            runs(dst_vals, &lens)
        } else {
            Vec::new()
        });
        scatter_bytes::<PAIRS>(src, src_vals, &mut out, &mut out_vals, pos);
        in_a = !in_a;
    }
    if in_a == into_b {
        let (src, src_vals, dst, dst_vals) = if in_a {
            (&*a, &*a_vals, &mut *b, &mut *b_vals)
        } else {
            (&*b, &*b_vals, &mut *a, &mut *a_vals)
        };
        dst.copy_from_slice(src);
        if PAIRS {
            dst_vals.copy_from_slice(src_vals);
        }
    }
}

/// LSD passes over `bytes` (lowest first), each a parallel [`partition`]:
/// the data starts in `a` and ends in `b`.
fn lsd_parallel<const PAIRS: bool>(
    a: &mut [u32],
    a_vals: &mut [u32],
    b: &mut [u32],
    b_vals: &mut [u32],
    bytes: &[usize],
) {
    let n = a.len();
    let chunk = n.div_ceil(rayon::current_num_threads().max(1) * 4).max(1);
    let mut in_a = true;
    for &pos in bytes {
        let (src, src_vals, dst, dst_vals) = if in_a {
            (&*a, &*a_vals, &mut *b, &mut *b_vals)
        } else {
            (&*b, &*b_vals, &mut *a, &mut *a_vals)
        };
        let counts: Vec<[u32; 256]> = src
            .par_chunks(chunk)
            .map(|keys| {
                let mut c = [0u32; 256];
                for &k in keys {
                    c[byte(k, pos)] += 1;
                }
                c
            })
            .collect();
        if (0..256).any(|d| counts.iter().map(|c| c[d] as usize).sum::<usize>() == n) {
            continue;
        }
        partition::<PAIRS>(src, src_vals, dst, dst_vals, pos, &counts, chunk);
        in_a = !in_a;
    }
    if in_a {
        copy_par(a, b);
        if PAIRS {
            copy_par(a_vals, b_vals);
        }
    }
}

/// The CPU's whole sort: `keys` (and `vals`, with `PAIRS`) sorted stably by
/// key, `tmp` (and `tmp_vals`) as scratch; all slices the same length.
///
/// Bytes on which all keys agree are skipped. One parallel stable partition
/// by the highest varying byte (per-chunk counts, each chunk writing its own
/// disjoint ranges) leaves 256 buckets of about n/256 keys; each bucket is
/// then sorted on the lower bytes by one thread, in cache, the buckets in
/// parallel. A bucket too large to balance that way is sorted with parallel
/// passes instead.
pub(crate) fn whole_cpu<const PAIRS: bool>(
    keys: &mut [u32],
    vals: &mut [u32],
    tmp: &mut [u32],
    tmp_vals: &mut [u32],
) {
    let n = keys.len();
    if n < 2 || tmp.len() < n || (PAIRS && (vals.len() < n || tmp_vals.len() < n)) {
        return;
    }
    let tmp = &mut tmp[..n];
    if n < SERIAL_BELOW {
        let bytes = varying(&byte_counts(keys), n);
        lsd_serial::<PAIRS>(keys, vals, tmp, tmp_vals, &bytes, false);
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let chunk = n.div_ceil(threads * 4);
    let counts: Vec<[[u32; 256]; 4]> = keys.par_chunks(chunk).map(byte_counts).collect();
    let mut total = [[0u32; 256]; 4];
    for c in &counts {
        for (t, c) in total.iter_mut().zip(c) {
            for (t, c) in t.iter_mut().zip(c) {
                *t += c;
            }
        }
    }
    let bytes = varying(&total, n);
    let Some((&top, lower)) = bytes.split_last() else {
        return;
    };
    let top_counts: Vec<[u32; 256]> = counts.iter().map(|c| c[top]).collect();
    partition::<PAIRS>(keys, vals, tmp, tmp_vals, top, &top_counts, chunk);

    // Bucket d is tmp[start_d .. start_d + total[top][d]]; it goes back to
    // the same range of keys, sorted on the lower bytes.
    let big = (n / (2 * threads)).max(SERIAL_BELOW);
    let (mut k, mut kv, mut t, mut tv) = (keys, vals, tmp, tmp_vals);
    let mut small = Vec::with_capacity(256);
    for &len in &total[top] {
        let len = len as usize;
        let (kb, kr) = std::mem::take(&mut k).split_at_mut(len);
        let (tb, tr) = std::mem::take(&mut t).split_at_mut(len);
        let (kvb, kvr) = std::mem::take(&mut kv).split_at_mut(if PAIRS { len } else { 0 });
        let (tvb, tvr) = std::mem::take(&mut tv).split_at_mut(if PAIRS { len } else { 0 });
        (k, t, kv, tv) = (kr, tr, kvr, tvr);
        if len > big {
            lsd_parallel::<PAIRS>(tb, tvb, kb, kvb, lower);
        } else if len > 0 {
            small.push((tb, tvb, kb, kvb));
        }
    }
    small.into_par_iter().for_each(|(tb, tvb, kb, kvb)| {
        lsd_serial::<PAIRS>(tb, tvb, kb, kvb, lower, true);
    });
}
