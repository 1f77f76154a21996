//! The k-means shaders' interface: each pass's uniform block, declared
//! once in Rust and appended to the WGSL, and the whole source.

use crate::uniform::wgsl_struct;

wgsl_struct! {
    assign_params => AssignParams;
    /// The assignment shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct AssignParams {
        /// Points.
        pub n: u32,
        /// Coordinates per point.
        pub d: u32,
        /// Centroids.
        pub k: u32,
        /// Padding to the uniform block's 16 bytes.
        pub _pad: u32,
    }
}

wgsl_struct! {
    partial_params => PartialParams;
    /// The first update pass's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct PartialParams {
        /// Points.
        pub n: u32,
        /// Coordinates per point.
        pub d: u32,
        /// Clusters.
        pub k: u32,
        /// Values per row of partial sums: `k·(d + 1)`.
        pub m: u32,
        /// Points per row ([`CHUNK`](super::CHUNK)).
        pub chunk: u32,
        /// Rows: `ceil(n / chunk)`.
        pub groups: u32,
        /// Padding to the uniform block's 16-byte alignment.
        pub _pad0: u32,
        /// Padding.
        pub _pad1: u32,
    }
}

wgsl_struct! {
    reduce_params => ReduceParams;
    /// A middle update pass's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct ReduceParams {
        /// Rows of partial sums in.
        pub rows: u32,
        /// Values per row.
        pub m: u32,
        /// Rows out: `ceil(rows / 256)`.
        pub out_rows: u32,
        /// Padding to the uniform block's 16 bytes.
        pub _pad: u32,
    }
}

wgsl_struct! {
    finalize_params => FinalizeParams;
    /// The last update pass's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct FinalizeParams {
        /// Rows of partial sums in (at most [`BLOCK`](super::BLOCK)).
        pub rows: u32,
        /// Coordinates per point.
        pub d: u32,
        /// Clusters.
        pub k: u32,
        /// Values per row: `k·(d + 1)`.
        pub m: u32,
    }
}

/// The WGSL source: entry points `assign`, `partial_sums` (the update's
/// first pass), `reduce` (its middle passes) and `finalize` (the means).
pub const WGSL: &str = concat!(
    include_str!("../../../shaders/kmeans.wgsl"),
    assign_params!(),
    partial_params!(),
    reduce_params!(),
    finalize_params!(),
);
