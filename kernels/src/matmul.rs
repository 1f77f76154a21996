//! matmul: `C = A·B` for row-major f32 matrices of any shape m×k by k×n.
//!
//! Per element of C: 2k floating-point operations; 2mnk in all, over
//! 4(mk + kn + mn) bytes at the least. Compute-bound at large sizes.
//!
//! The GPU shader computes 64×64 tiles of C, each invocation a 4×4 block in
//! registers, staging A and B through workgroup memory. The CPU side calls
//! faer's matrix product, the fastest portable Rust GEMM: a runtime should
//! use the best implementation it can get on each processor.
//!
//! Two variants, which the model chooses where they are faster: "regblock"
//! on GPUs (no workgroup memory, no barriers) and "serial" on the CPU
//! (faer's product on the calling thread: on small products it saves
//! splitting the work across the pool, on large ones it leaves cores idle).

use faer::{Accum, MatMut, MatRef, Par};
use pel_runtime::{Buffer, CpuArgs, Kernel, Read, ReadWrite, Result, Variant};

use crate::launch::one_kernel;
use crate::uniform::wgsl_struct;
use crate::{ensure, invalid, u32_len};

/// Edge of the square tile of C one workgroup computes.
pub const TILE: usize = 64;

wgsl_struct! {
    matmul_params => Params;
    /// The shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct MatmulParams {
        /// Rows of A and C.
        pub m: u32,
        /// Columns of B and C.
        pub n: u32,
        /// Columns of A, rows of B.
        pub k: u32,
        /// Tiles across a row of C: `ceil(n / 64)`.
        pub tiles_n: u32,
        /// Tiles in all: `ceil(m / 64) · ceil(n / 64)`.
        pub tiles: u32,
        /// Padding to the uniform block's 16-byte alignment.
        pub _pad0: u32,
        /// Padding.
        pub _pad1: u32,
        /// Padding.
        pub _pad2: u32,
    }
}

/// The WGSL source.
pub const WGSL: &str = concat!(include_str!("../../shaders/matmul.wgsl"), matmul_params!());

/// The register-blocked variant ("regblock"): no workgroup memory, no
/// barriers, an 8×8 block of C an invocation, 64×64 a workgroup. Faster
/// where barriers are dear (llvmpipe); the model chooses per device.
pub const WGSL_REGBLOCK: &str = concat!(
    include_str!("../../shaders/matmul_regblock.wgsl"),
    matmul_params!()
);

/// The C tile (rows, columns) of [`WGSL_REGBLOCK`]'s workgroups.
pub const REGBLOCK_TILE: (usize, usize) = (64, 64);

impl MatmulParams {
    /// The block for an m×k by k×n product, or an error naming the
    /// dimension that does not fit the shader's 32-bit indices.
    pub fn new(m: usize, n: usize, k: usize) -> Result<MatmulParams> {
        let tiles_n = n.div_ceil(TILE);
        let tiles = m.div_ceil(TILE) as u128 * tiles_n as u128;
        let tiles = u32::try_from(tiles).map_err(|_| {
            invalid(
                "matmul",
                "c",
                format!(
                    "{m}×{n} needs {tiles} tiles of 64×64; the most one launch can index is {}",
                    u32::MAX
                ),
            )
        })?;
        Ok(MatmulParams {
            m: u32_len("matmul", "m", m)?,
            n: u32_len("matmul", "n", n)?,
            k: u32_len("matmul", "k", k)?,
            tiles_n: tiles_n as u32,
            tiles,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        })
    }
}

one_kernel! {
    /// The matmul kernel.
    Matmul = build();
    /// `c = a·b` where `a` is m×k, `b` is k×n and `c` is m×n, row-major.
    run,
    /// Submits `c = a·b` of [`run`](Self::run) and returns its task at once.
    submit(a: &Buffer<f32>, b: &Buffer<f32>, c: &Buffer<f32>, m: usize, n: usize, k: usize)
        => [a, b, c], Self::params(a, b, c, (m, n, k));
}

/// faer's product of `a` (m×k) and `b` (k×n) into `c` (m×n), on `par`.
fn product(args: CpuArgs<'_, Args>, p: &MatmulParams, par: Par) {
    let (a, b, c) = args.split();
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    let a = MatRef::from_row_major_slice(a, m, k);
    let b = MatRef::from_row_major_slice(b, k, n);
    let c = MatMut::from_row_major_slice_mut(c, m, n);
    faer::linalg::matmul::matmul(c, Accum::Replace, a, b, 1.0f32, par);
}

/// The arguments: A and B read, C written.
type Args = (Read<f32>, Read<f32>, ReadWrite<f32>);

fn build() -> Result<Kernel> {
    // Par::rayon(0) takes the current pool: pel's CPU pool.
    Kernel::builder("matmul", WGSL)
        .params::<MatmulParams>()
        .cpu::<Args>(|args, p| product(args, p, Par::rayon(0)))
        .workgroups(|p, _| p.tiles as u64)
        .cost(|p, _| p.m as u64 * p.n as u64 * p.k.max(1) as u64)
        .variant(
            Variant::wgsl("regblock", WGSL_REGBLOCK).workgroups(|p: &MatmulParams, _| {
                let (m, n) = (p.m as u64, p.n as u64);
                m.div_ceil(REGBLOCK_TILE.0 as u64) * n.div_ceil(REGBLOCK_TILE.1 as u64)
            }),
        )
        .variant(Variant::cpu::<Args>("serial", |args, p| {
            product(args, p, Par::Seq)
        }))
        .build()
}

impl Matmul {
    /// The params of `c = a·b` for `a` m×k, `b` k×n and `c` m×n, checked
    /// against the buffers.
    fn params(
        a: &Buffer<f32>,
        b: &Buffer<f32>,
        c: &Buffer<f32>,
        (m, n, k): (usize, usize, usize),
    ) -> Result<MatmulParams> {
        for (arg, buf, rows, cols) in [("a", a, m, k), ("b", b, k, n), ("c", c, m, n)] {
            ensure(
                rows.checked_mul(cols) == Some(buf.len()),
                "matmul",
                arg,
                || {
                    format!(
                        "{arg} must be {rows}×{cols} = {} elements for m={m}, n={n}, k={k}, but has {}",
                        rows as u128 * cols as u128,
                        buf.len()
                    )
                },
            )?;
        }
        MatmulParams::new(m, n, k)
    }
}

/// The serial reference in f64: `C` and `|A|·|B|` (for the tolerance).
pub fn reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0.0f64; m * n];
    let mut mag = vec![0.0f64; m * n];
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        let mrow = &mut mag[i * n..(i + 1) * n];
        for p in 0..k {
            let aip = a[i * k + p] as f64;
            let brow = &b[p * n..(p + 1) * n];
            for ((c, g), &bv) in row.iter_mut().zip(mrow.iter_mut()).zip(brow) {
                *c += aip * bv as f64;
                *g += (aip * bv as f64).abs();
            }
        }
    }
    (c, mag)
}
