// spmv: y = A·x for a sparse matrix A in CSR form (row_ptr, col_idx, values).
//
// Each row gets 8 consecutive invocations (32 rows per workgroup of 256):
// lane l sums the row's non-zeros l, l+8, l+16, ... in f32, so the lanes of a
// row read consecutive column indices and values (coalesced), and long rows
// are shared out. After one barrier, lane 0 adds the row's 8 partial sums
// from workgroup memory. No subgroup operations are needed. Workgroups are
// numbered linearly (pel folds more than 65,535 of them into 2-D).
//
// The host validated A when it was built: every column index is below the
// length of x, and row_ptr never decreases and ends at the number of
// non-zeros.

// `Params` is declared once, in Rust (`SpmvParams` in kernels/src/spmv.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> row_ptr: array<u32>;
@group(0) @binding(1) var<storage, read> col_idx: array<u32>;
@group(0) @binding(2) var<storage, read> values: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const WG: u32 = 256u;
const LANES: u32 = 8u;
const ROWS: u32 = 32u; // WG / LANES
var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    let row = group * ROWS + lid / LANES;
    let lane = lid % LANES;
    var acc = 0.0;
    if row < p.rows {
        let end = row_ptr[row + 1u];
        for (var k = row_ptr[row] + lane; k < end; k = k + LANES) {
            acc = fma(values[k], x[col_idx[k]], acc);
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    if lane == 0u && row < p.rows {
        var sum = partial[lid];
        for (var l = 1u; l < LANES; l = l + 1u) {
            sum = sum + partial[lid + l];
        }
        y[row] = sum;
    }
}
