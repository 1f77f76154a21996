
// ---- shared by pel-kernels (shaders/lib/workgroup_scan.wgsl), appended
// ---- after the shader's own lines. The shader defines `alias WgScan = ...;`
// ---- (u32 or f32) and `const WG: u32 = 64u;`, its workgroup size.

// Two halves of WG values: a double-buffered Hillis–Steele scan.
var<workgroup> wg_scan_scratch: array<WgScan, 2u * WG>;

// The sum of the `v` of the invocations before this one: the exclusive scan
// of the workgroup's values, in log2(WG) steps in workgroup memory. Call it
// in uniform control flow; a second call needs a barrier before it.
fn workgroup_exclusive_scan(lid: u32, v: WgScan) -> WgScan {
    wg_scan_scratch[lid] = v;
    workgroupBarrier();
    var src = 0u;
    for (var d = 1u; d < WG; d = d << 1u) {
        var t = wg_scan_scratch[src + lid];
        if lid >= d {
            t = wg_scan_scratch[src + lid - d] + t;
        }
        wg_scan_scratch[(WG - src) + lid] = t;
        src = WG - src;
        workgroupBarrier();
    }
    var before = WgScan(0);
    if lid > 0u {
        before = wg_scan_scratch[src + lid - 1u];
    }
    return before;
}
