
// ---- shared by pel-kernels (shaders/lib/segments.wgsl), appended after
// ---- the shader's own lines. The shader runs with a workgroup of 256 split
// ---- into segments of `seg` invocations (a power of two), one per row of a
// ---- rows×cols row-major matrix.

var<workgroup> seg_scratch: array<f32, 256>;

// Where an invocation works: the segment's row, and its place in it.
struct Segment {
    // The invocation's lane in its segment, and the segment's first
    // invocation in the workgroup.
    lane: u32,
    first: u32,
    row: u32,
    // The row's first element.
    base: u32,
    // Columns to read: cols, or 0 past the last row, where a segment still
    // takes part in the barriers with nothing to read (its loops run zero
    // times).
    cols: u32,
}

// The segment of invocation `lid` of workgroup `group`; the workgroup's
// segments take consecutive rows.
fn segment(lid: u32, group: u32, seg: u32, rows: u32, cols: u32) -> Segment {
    let lane = lid % seg;
    let row = group * (256u / seg) + lid / seg;
    return Segment(lane, lid - lane, row, row * cols, select(0u, cols, row < rows));
}

// The sum of `v` (with `take_max`, the maximum) over the segment of `seg`
// invocations from `first`, returned to each of them. A tree of fan-in 16:
// two levels (and barriers) for 256 values. Each level's `next` partial
// results gather values `next` apart, so neighbouring invocations read
// neighbouring words. (width / 16 is the next level's width, or 0 after the
// last.) Every invocation of the workgroup must call it; a second call needs
// a barrier before it.
fn segment_reduce(lid: u32, first: u32, seg: u32, v: f32, take_max: bool) -> f32 {
    seg_scratch[lid] = v;
    workgroupBarrier();
    let lane = lid - first;
    for (var width = seg; width > 1u; width = width / 16u) {
        let fan = min(width, 16u);
        let next = width / fan;
        if lane < next {
            var acc = seg_scratch[lid];
            for (var f = 1u; f < fan; f = f + 1u) {
                let w = seg_scratch[lid + f * next];
                acc = select(acc + w, max(acc, w), take_max);
            }
            seg_scratch[lid] = acc;
        }
        workgroupBarrier();
    }
    return seg_scratch[first];
}
