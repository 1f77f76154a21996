
// ---- shared by pel-kernels (shaders/lib/workgroup_sum.wgsl), appended
// ---- after the shader's own lines. The shader defines `alias WgSum = ...;`
// ---- (u32, f32 or a vector of f32) and `const WG: u32 = ...;`, its
// ---- workgroup size (a power of two).

var<workgroup> wg_sum_scratch: array<WgSum, WG>;

// The sum of the WG invocations' `v`, in a tree of log2(WG) halvings in
// workgroup memory; every invocation gets it. Call it in uniform control
// flow; a second call needs a barrier before it.
fn workgroup_sum(lid: u32, v: WgSum) -> WgSum {
    wg_sum_scratch[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if lid < s {
            wg_sum_scratch[lid] = wg_sum_scratch[lid] + wg_sum_scratch[lid + s];
        }
        workgroupBarrier();
    }
    return wg_sum_scratch[0];
}
