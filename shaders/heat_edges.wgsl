// heat_edges: copies a block's first row into `top` and its last row into
// `bottom` (the halos a block's neighbours read); one invocation a column.
//
// `Params` is declared once, in Rust (`HeatBlockParams` in
// kernels/src/heat_block.rs), and appended to this source.

@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read_write> top: array<f32>;
@group(0) @binding(2) var<storage, read_write> bottom: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let x = pel_index(id, groups);
    if x >= p.width || p.rows == 0u {
        return;
    }
    top[x] = u[x];
    bottom[x] = u[(p.rows - 1u) * p.width + x];
}
