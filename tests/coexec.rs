//! Co-execution: a splittable kernel split between a GPU and the CPU gives
//! exactly the elements each device gives unsplit; the share is calibrated
//! from measurements and kept in the model file.

mod common;

use pel::kernels::Mandelbrot;
use pel::kernels::mandelbrot::View;
use pel::{Backend, Error, Runtime, Target};

const W: usize = 97;
const H: usize = 61;

fn render(rt: &Runtime, m: &Mandelbrot, target: Target) -> Vec<u32> {
    let counts = rt.buffer(&vec![0xDEAD_BEEFu32; W * H]);
    m.run(rt, target, &counts, W, H, View::full(W, H), 200)
        .unwrap();
    rt.read(&counts).unwrap()
}

#[test]
fn a_split_run_equals_each_devices_unsplit_elements() {
    let rt = common::rt();
    let m = Mandelbrot::new().unwrap();
    for gpu in common::gpus(rt, "a_split_run_equals_each_devices_unsplit_elements") {
        let Backend::Gpu(g) = gpu else { unreachable!() };
        let on_gpu = render(rt, &m, Target::On(gpu));
        let on_cpu = render(rt, &m, Target::On(Backend::Cpu));
        for permille in [1u16, 250, 500, 731, 999] {
            let split = render(rt, &m, Target::Split { gpu: g, permille });
            // The GPU takes the first rows (at least one, at most all but one).
            let rows = ((H as f64 * permille as f64 / 1000.0).round() as usize).clamp(1, H - 1);
            let cut = rows * W;
            assert_eq!(split[..cut], on_gpu[..cut], "gpu{g} part at {permille}‰");
            assert_eq!(split[cut..], on_cpu[cut..], "cpu part at {permille}‰");
        }
    }
}

#[test]
fn a_split_result_stays_coherent_for_later_calls() {
    let rt = common::rt();
    let m = Mandelbrot::new().unwrap();
    let Some(gpu) = common::gpu(rt, "a_split_result_stays_coherent_for_later_calls") else {
        return;
    };
    let Backend::Gpu(g) = gpu else { unreachable!() };
    let counts = rt.buffer(&vec![7u32; W * H]);
    let info = m
        .run(
            rt,
            Target::Split {
                gpu: g,
                permille: 400,
            },
            &counts,
            W,
            H,
            View::full(W, H),
            100,
        )
        .unwrap();
    assert_eq!(info.split, Some(0.4));
    // Both halves meet on the host; the GPU's copy is stale.
    let v = rt.validity(&counts).unwrap();
    assert!(v.host && !v.on(gpu), "{}", v.describe());
    let whole = pel::kernels::mandelbrot::reference(W, H, View::full(W, H), 100);
    let got = rt.read(&counts).unwrap();
    let differing = got.iter().zip(&whole).filter(|(a, b)| a != b).count();
    // The GPU's rows may differ at a few ill-conditioned pixels only.
    assert!(differing <= W * H / 100, "{differing} pixels differ");
}

#[test]
fn bad_splits_are_refused_with_reasons() {
    let rt = common::rt();
    let Some(gpu) = common::gpu(rt, "bad_splits_are_refused_with_reasons") else {
        return;
    };
    let Backend::Gpu(g) = gpu else { unreachable!() };
    let m = Mandelbrot::new().unwrap();
    let counts = rt.zeros::<u32>(W * H);
    for permille in [0u16, 1000] {
        let e = m
            .run(
                rt,
                Target::Split { gpu: g, permille },
                &counts,
                W,
                H,
                View::full(W, H),
                10,
            )
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
        assert!(e.to_string().contains("1 to 999"), "{e}");
    }
    // One row cannot be split.
    let row = rt.zeros::<u32>(W);
    let e = m
        .run(
            rt,
            Target::Split {
                gpu: g,
                permille: 500,
            },
            &row,
            W,
            1,
            View::full(W, 1),
            10,
        )
        .unwrap_err();
    assert!(e.to_string().contains("cannot be split"), "{e}");
    // A kernel not declared splittable.
    let saxpy = pel::kernels::Saxpy::new().unwrap();
    let (x, y) = (rt.buffer(&[1.0f32; 8]), rt.zeros::<f32>(8));
    let e = saxpy
        .run(
            rt,
            Target::Split {
                gpu: g,
                permille: 500,
            },
            2.0,
            &x,
            &y,
        )
        .unwrap_err();
    assert!(e.to_string().contains("not declared splittable"), "{e}");
    // No such GPU.
    let e = m
        .run(
            rt,
            Target::Split {
                gpu: 99,
                permille: 500,
            },
            &counts,
            W,
            H,
            View::full(W, H),
            10,
        )
        .unwrap_err();
    assert!(matches!(e, Error::NoSuchBackend { .. }), "{e}");
}

#[test]
fn the_share_is_calibrated_and_kept_in_the_model_file() {
    let dir = std::env::temp_dir().join(format!("pel-coexec-{}", std::process::id()));
    let file = dir.join("model.json");
    let _ = std::fs::remove_dir_all(&dir);
    let build = || {
        Runtime::builder()
            .model_file(&file)
            .calibration_samples(3)
            .build()
            .unwrap()
    };
    let rt = build();
    if common::gpu(&rt, "the_share_is_calibrated_and_kept_in_the_model_file").is_none() {
        return;
    }
    let m = Mandelbrot::new().unwrap();
    let (w, h) = (256, 256);
    let counts = rt.zeros::<u32>(w * h);
    let view = View::full(w, h);
    // Enough automatic calls to calibrate every device and then the split.
    let mut split_runs = 0;
    for _ in 0..60 {
        let info = m.run(&rt, Target::Auto, &counts, w, h, view, 256).unwrap();
        split_runs += info.split.is_some() as usize;
    }
    let params = pel::kernels::mandelbrot::MandelbrotParams {
        width: w as u32,
        first: 0,
        max_iter: 256,
        n: (w * h) as u32,
        x0: view.x0,
        y0: view.y0,
        dx: view.dx,
        dy: view.dy,
    };
    let share = rt
        .split_share(m.kernel(), &[&counts], &params)
        .unwrap()
        .expect("after 60 calls the share is known");
    assert!((0.0..=1.0).contains(&share), "{share}");
    eprintln!("mandelbrot {w}×{h}: gpu share {share} ({split_runs} split runs)");

    // Forced splits are measurements too; the model keeps them.
    let Backend::Gpu(g) =
        common::gpu(&rt, "the_share_is_calibrated_and_kept_in_the_model_file").unwrap()
    else {
        unreachable!()
    };
    for _ in 0..3 {
        m.run(
            &rt,
            Target::Split {
                gpu: g,
                permille: 300,
            },
            &counts,
            w,
            h,
            view,
            256,
        )
        .unwrap();
    }
    let rows = rt.split_rows();
    let row = rows
        .iter()
        .find(|r| {
            r.kernel == "mandelbrot"
                && r.bucket_from <= (w * h) as u64
                && (w * h) as u64 <= r.bucket_to
        })
        .expect("a split entry for this size")
        .clone();
    assert!(
        row.runs >= 3 && row.median_s.is_some_and(|t| t > 0.0),
        "{row:?}"
    );
    rt.save_model();
    drop(rt);
    // A new runtime on the same file starts from the same split entries.
    let again = build();
    let reloaded = again.split_rows();
    assert_eq!(reloaded.len(), rows.len());
    let r2 = reloaded
        .iter()
        .find(|r| r.kernel == row.kernel && r.bucket_from == row.bucket_from)
        .expect("the entry came back");
    assert_eq!((r2.gpu, r2.runs), (row.gpu, row.runs));
    assert!((r2.share - row.share).abs() < 1e-9);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}
