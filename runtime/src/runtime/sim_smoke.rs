use super::*;
use crate::device::sim::{SimDevice, SimOp};
use crate::kernel::{Read, ReadWrite};
use std::time::Duration;

const ADD: &str = r#"
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&y) { y[id.x] = y[id.x] + x[id.x]; }
}
"#;

#[test]
fn smoke() {
    let a = SimDevice::new("a").cost(|op| match op {
        SimOp::Kernel { size, .. } => Duration::from_nanos(*size),
        _ => Duration::from_micros(1),
    });
    let rt = Runtime::builder()
        .simulated(vec![a.clone()])
        .persist_model(false)
        .build()
        .unwrap();
    let k = Kernel::builder("add", ADD)
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _: &()| {
            let (x, y) = args.split();
            for (y, x) in y.iter_mut().zip(x) {
                *y += x;
            }
        })
        .build()
        .unwrap();
    let x = rt.buffer(&[1.0f32, 2.0, 3.0]);
    let y = rt.buffer(&[10.0f32, 20.0, 30.0]);
    let info = rt.run_on(Backend::Gpu(0), &k, &[&x, &y], &()).unwrap();
    assert_eq!(
        info.exec,
        Duration::from_nanos(6),
        "the default cost counts every element"
    );
    let v = rt.validity(&y).unwrap();
    assert!(v.on(Backend::Gpu(0)) && !v.on(Backend::Cpu), "{v:?}");
    assert_eq!(rt.read(&y).unwrap(), vec![11.0, 22.0, 33.0]);
    assert_eq!(a.kernels_run(), 1);
    a.lose("test");
    rt.run(&k, &[&x, &y], &()).unwrap();
    assert_eq!(rt.read(&y).unwrap(), vec![12.0, 24.0, 36.0]);
}
