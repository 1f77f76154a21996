// sum, one pass: each workgroup reduces a block of 4,096 consecutive
// elements to one partial sum. Every thread first adds 16 elements a
// workgroup-width apart (so each load of the workgroup is one contiguous
// run), then the 256 thread sums meet in a tree of 8 halvings in workgroup
// memory (workgroup_sum, in shaders/lib). The host side runs passes until one value is left, so the data
// never leaves the GPU.

// `Params` is declared once, in Rust (`SumParams` in kernels/src/sum.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;
const ITEMS: u32 = 16u;
alias WgSum = f32;

@compute @workgroup_size(256)
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
    let sum = workgroup_sum(lid, v);
    if lid == 0u && group < p.groups {
        partial[group] = sum;
    }
}

// The variant light on barriers (entry `light`): the same blocks in
// workgroups of 64. Every invocation adds 64 elements a workgroup-width
// apart, then, after the workgroup's only barrier, invocation 0 adds the 64
// sums in order: one barrier instead of nine, faster where a barrier is
// dear (a CPU-emulated GPU runs a workgroup's invocations in turn at each);
// the tree above suits wide hardware workgroups.

const LIGHT_WG: u32 = 64u;
var<workgroup> light_sums: array<f32, 64>;

@compute @workgroup_size(64)
fn light(@builtin(local_invocation_index) lid: u32,
         @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    let base = group * WG * ITEMS + lid;
    var v = 0.0;
    for (var k = 0u; k < WG * ITEMS / LIGHT_WG; k = k + 1u) {
        let i = base + k * LIGHT_WG;
        if i < p.n {
            v = v + x[i];
        }
    }
    light_sums[lid] = v;
    workgroupBarrier();
    if lid == 0u && group < p.groups {
        var total = 0.0;
        for (var i = 0u; i < LIGHT_WG; i = i + 1u) {
            total = total + light_sums[i];
        }
        partial[group] = total;
    }
}
