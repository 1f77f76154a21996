//! Task Bench's workload: every pattern's graph, submitted through pel on
//! the CPU and on every GPU, gives the serial reference's last step; the
//! rayon peer gives it too; and bad shapes are typed errors.
//!
//! Tolerance: each value is a mean of f32s then `iterations` steps of
//! `x = 0.999·x + 0.001`; a GPU may fuse the multiply-add and sum in
//! another order, so values agree within 1e-5 relative (they lie in
//! (0, 2)). Every output element is written: the task seeds are non-zero
//! and the buffers start at zero, so a missed write shows.

mod common;

use pel::kernels::taskbench::{self, Graph, MAX_DEPS, Pattern, TaskBench};
use pel::{Backend, Error, Target};

use common::{everywhere, gpu, rt};

fn close(got: &[Vec<f32>], want: &[Vec<f32>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: points of the last step");
    for (p, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: point {p}'s values");
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{what}: point {p}, value {j}: {a} against {b}"
            );
        }
    }
}

#[test]
fn every_pattern_matches_the_serial_reference_on_every_backend() {
    for backend in everywhere("taskbench patterns on GPUs") {
        // Awkward sizes: one value, one workgroup and one past it.
        for (elems, width, steps) in [(1, 5, 6), (64, 4, 5), (65, 7, 7)] {
            let tb = TaskBench::new().unwrap().elems(elems).unwrap();
            for pattern in Pattern::ALL {
                let g = Graph::new(pattern, width, steps);
                let what = format!("{pattern} {width}×{steps}, {elems} values, on {backend}");
                let got = tb.run(rt(), Target::On(backend), &g, 3).unwrap();
                let want = taskbench::reference(&g, elems, 3).unwrap();
                close(&got, &want, &what);
            }
        }
    }
}

#[test]
fn automatic_placement_and_the_rayon_peer_agree_with_the_reference() {
    let tb = TaskBench::new().unwrap();
    for pattern in [
        Pattern::Stencil1d,
        Pattern::Nearest,
        Pattern::Fft,
        Pattern::Dom,
    ] {
        let g = Graph::new(pattern, 6, 9).radix(5);
        let want = taskbench::reference(&g, taskbench::ELEMS, 40).unwrap();
        let got = tb.run(rt(), Target::Auto, &g, 40).unwrap();
        close(&got, &want, &format!("{pattern} placed automatically"));
        let peer = taskbench::rayon(&g, taskbench::ELEMS, 40).unwrap();
        close(&peer, &want, &format!("{pattern} with rayon"));
    }
}

#[test]
fn one_task_past_65535_workgroups_on_a_gpu() {
    let Some(g) = gpu(rt(), "taskbench past 65,535 workgroups") else {
        return;
    };
    let elems = 65_537 * 64 - 1;
    let tb = TaskBench::new().unwrap().elems(elems).unwrap();
    let graph = Graph::new(Pattern::NoComm, 1, 2);
    let got = tb.run(rt(), Target::On(g), &graph, 2).unwrap();
    close(
        &got,
        &taskbench::reference(&graph, elems, 2).unwrap(),
        "no_comm 1×2 on a GPU",
    );
}

#[test]
fn shapes_pel_cannot_run_are_typed_errors() {
    let tb = TaskBench::new().unwrap();
    let e = tb
        .run(
            rt(),
            Target::On(Backend::Cpu),
            &Graph::new(Pattern::AllToAll, MAX_DEPS + 1, 2),
            1,
        )
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    assert!(e.to_string().contains("8 dependencies"), "{e}");
    let e = tb
        .run(
            rt(),
            Target::On(Backend::Cpu),
            &Graph::new(Pattern::Stencil1d, 4, 0),
            1,
        )
        .unwrap_err();
    assert!(e.to_string().contains("steps"), "{e}");
    assert!(TaskBench::new().unwrap().elems(0).is_err());
    // The reference and the peer take any width.
    let wide = Graph::new(Pattern::AllToAll, 12, 3);
    let peer = taskbench::rayon(&wide, 8, 2).unwrap();
    close(
        &peer,
        &taskbench::reference(&wide, 8, 2).unwrap(),
        "all_to_all 12×3 with rayon",
    );
}
