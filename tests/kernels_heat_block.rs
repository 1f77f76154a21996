//! heat_block (a block of rows of a heat grid, its neighbours' edge rows
//! given apart) against heat's serial reference, on the CPU and on every
//! GPU, at awkward sizes and cuts: a grid stepped in blocks is the grid
//! stepped whole. Inputs are seeded random values; the outputs start
//! poisoned (NaN). Tolerance: 1e-5 of the grid's largest value a step
//! against the f64 reference; on the CPU, bitwise equal to `Heat`'s CPU run
//! (the same arithmetic term for term). More than 65,535 workgroups: a
//! 3 × 1,398,081 grid (65,536 workgroups of 64 cells).

mod common;

use pel::kernels::heat::{self, Heat};
use pel::kernels::heat_block::HeatBlock;
use pel::{Backend, Buffer, BufferArg, Error, Runtime, Target};

use common::{cpu_and_first_gpu, everywhere, random, rt};

/// Steps `grid` (w × h) in blocks of the rows `cuts` gives, on `backend`.
fn in_blocks(
    rt: &Runtime,
    backend: Backend,
    grid: &[f32],
    (w, h): (usize, usize),
    cuts: &[usize],
    alpha: f32,
    steps: usize,
) -> pel::Result<Vec<f32>> {
    let hb = HeatBlock::new()?;
    assert_eq!(cuts.iter().sum::<usize>(), h);
    let mut row0 = 0;
    let mut blocks = Vec::new();
    for &rows in cuts {
        let cells = &grid[row0 * w..(row0 + rows) * w];
        let poison = |n: usize| rt.buffer(&vec![f32::NAN; n]);
        blocks.push((
            HeatBlock::params(w, h, row0, rows, alpha)?,
            [rt.buffer(cells), poison(rows * w)],
            poison(w),
            poison(w),
        ));
        row0 += rows;
    }
    for s in 0..steps {
        let (src, dst) = (s % 2, 1 - s % 2);
        for (p, uv, top, bottom) in &blocks {
            let args: [&dyn BufferArg; 3] = [&uv[src], top, bottom];
            rt.run_on(backend, hb.edges_kernel(), &args, p)?;
        }
        for (i, (p, uv, top, bottom)) in blocks.iter().enumerate() {
            let north: &Buffer<f32> = if i > 0 { &blocks[i - 1].3 } else { top };
            let south: &Buffer<f32> = blocks.get(i + 1).map_or(bottom, |b| &b.2);
            let args: [&dyn BufferArg; 4] = [&uv[src], north, south, &uv[dst]];
            rt.run_on(backend, hb.kernel(), &args, p)?;
        }
    }
    let mut out = Vec::with_capacity(w * h);
    for (_, uv, _, _) in &blocks {
        out.extend(rt.read(&uv[steps % 2])?);
    }
    Ok(out)
}

/// Every shape and cut on `backends`, against the reference (and, on the
/// CPU, bitwise against `Heat`).
fn check(backends: &[Backend], shapes: &[((usize, usize), &[usize])], steps: usize) {
    let rt = rt();
    let alpha = 0.23;
    for (seed, &((w, h), cuts)) in shapes.iter().enumerate() {
        let grid: Vec<f32> = random(w * h, 100 + seed as u64)
            .iter()
            .map(|v| 100.0 * v.abs())
            .collect();
        let want = heat::reference(&grid, w, h, alpha, steps);
        let top = grid.iter().copied().fold(1.0f32, f32::max) as f64;
        let whole = {
            let b = rt.buffer(&grid);
            Heat::new()
                .unwrap()
                .run(rt, Target::On(Backend::Cpu), &b, w, h, alpha, steps)
                .unwrap();
            rt.read(&b).unwrap()
        };
        for &backend in backends {
            let got = in_blocks(rt, backend, &grid, (w, h), cuts, alpha, steps).unwrap();
            let worst = got
                .iter()
                .zip(&want)
                .map(|(&g, &r)| (g as f64 - r).abs())
                .fold(
                    0.0f64,
                    |a, e| if e.is_nan() { f64::INFINITY } else { a.max(e) },
                );
            assert!(
                worst <= 1e-5 * top * steps.max(1) as f64,
                "{w}×{h} cut {cuts:?} on {backend}: off by {worst}"
            );
            if backend == Backend::Cpu {
                assert!(
                    got.iter()
                        .zip(&whole)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{w}×{h} cut {cuts:?}: not bitwise heat's CPU run"
                );
            }
        }
    }
}

#[test]
fn heat_block_steps_a_grid_cut_in_blocks_as_the_whole_grid() {
    let shapes: [((usize, usize), &[usize]); 9] = [
        ((4, 0), &[]),
        ((0, 3), &[3]),
        ((1, 1), &[1]),
        ((2, 3), &[1, 2]),
        ((3, 3), &[3]),
        ((5, 7), &[2, 2, 3]),
        ((64, 13), &[1, 12]),
        ((65, 9), &[1, 1, 1, 1, 5]),
        ((67, 61), &[13, 17, 31]),
    ];
    check(&everywhere("heat_block"), &shapes, 7);
}

#[test]
fn heat_block_over_65535_workgroups() {
    let shapes: [((usize, usize), &[usize]); 1] = [((3, 1_398_081), &[699_040, 699_041])];
    check(
        &cpu_and_first_gpu("heat_block_over_65535_workgroups"),
        &shapes,
        1,
    );
}

#[test]
fn heat_block_refuses_a_block_outside_its_grid_and_an_unstable_alpha() {
    let err = HeatBlock::params(8, 10, 6, 5, 0.2).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { kernel, arg, .. } if kernel == "heat_block" && arg == "rows"),
        "{err}"
    );
    let err = HeatBlock::params(8, 10, 0, 5, 0.3).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { kernel, arg, .. } if kernel == "heat_block" && arg == "alpha"),
        "{err}"
    );
}
