
// ---- shared by pel-kernels (shaders/lib/workgroup_sum.wgsl), appended
// ---- after the shader's own lines. The shader defines `alias WgSum = ...;`
// ---- (f32 or a vector of it) and runs with a workgroup of 256.

var<workgroup> wg_sum_scratch: array<WgSum, 256>;

// The sum of the 256 invocations' `v`, in a tree of 8 halvings in workgroup
// memory; every invocation gets it. Call it in uniform control flow.
fn workgroup_sum(lid: u32, v: WgSum) -> WgSum {
    wg_sum_scratch[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if lid < s {
            wg_sum_scratch[lid] = wg_sum_scratch[lid] + wg_sum_scratch[lid + s];
        }
        workgroupBarrier();
    }
    return wg_sum_scratch[0];
}
