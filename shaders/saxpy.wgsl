// saxpy: y = a·x + y over n elements, one invocation per element.
//
// pel folds launches of more than 65,535 workgroups into 2-D, so the linear
// index is rebuilt from both dimensions of the grid.

// `Params` is declared once, in Rust (`SaxpyParams` in kernels/src/saxpy.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * WG;
    if i < p.n {
        y[i] = fma(p.a, x[i], y[i]);
    }
}
