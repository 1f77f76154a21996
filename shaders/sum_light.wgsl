// sum, one pass, light on barriers: the same blocks of 4,096 consecutive
// elements as sum.wgsl, in workgroups of 64. Every invocation adds 64
// elements a workgroup-width apart (each load of the workgroup one
// contiguous run), then, after the workgroup's only barrier, invocation 0
// adds the 64 sums in order. One barrier instead of nine: faster where a
// barrier is dear (a CPU-emulated GPU runs a workgroup's invocations in
// turn at each one); the tree of sum.wgsl suits wide hardware workgroups.

// `Params` is declared once, in Rust (`SumParams` in kernels/src/sum.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 64u;
const ITEMS: u32 = 64u;
var<workgroup> sums: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    let base = group * WG * ITEMS + lid;
    var v = 0.0;
    for (var k = 0u; k < ITEMS; k = k + 1u) {
        let i = base + k * WG;
        if i < p.n {
            v = v + x[i];
        }
    }
    sums[lid] = v;
    workgroupBarrier();
    if lid == 0u && group < p.groups {
        var total = 0.0;
        for (var i = 0u; i < WG; i = i + 1u) {
            total = total + sums[i];
        }
        partial[group] = total;
    }
}
