//! The trace: named lanes, kernel and transfer spans, and a CPU-lane span
//! overlapping a GPU-lane span when a submitted task graph keeps two devices
//! busy at once. Asserts on the events' start and end order, never on
//! durations.

mod common;

use pel::Runtime;

#[test]
fn submitted_cpu_and_gpu_tasks_overlap_in_the_trace() {
    let rt = Runtime::builder().persist_model(false).build().unwrap();
    let gpus = common::gpus(&rt, "submitted_cpu_and_gpu_tasks_overlap_in_the_trace");
    if gpus.is_empty() {
        return;
    }
    assert!(
        rt.trace_events().is_empty(),
        "tracing is off until asked for"
    );
    rt.enable_trace();
    // The demo graph, submitted: images on the GPU while the saxpy streams
    // and the chain run on the CPU. On a busy machine they might by chance
    // not meet, so try a few times before concluding that they cannot.
    let mut overlap = None;
    for _ in 0..5 {
        pel::demo::trace_demo(&rt, pel::demo::Placing::ComputeOn(gpus[0])).unwrap();
        overlap = pel::demo::overlapping(&rt.trace_events(), rt.gpu_count());
        if overlap.is_some() {
            break;
        }
    }
    let (cpu, gpu) = overlap.expect("a CPU-lane span overlaps a GPU-lane span");
    assert_eq!(cpu.tid, 0);
    assert_eq!(gpu.tid, 1);
    assert!(cpu.ts < gpu.ts + gpu.dur && gpu.ts < cpu.ts + cpu.dur);

    let events = rt.trace_events();
    let transfers = rt.gpu_count() as u32 + 1;
    assert!(events.iter().any(|e| e.tid == 0 && e.name == "saxpy"));
    assert!(events.iter().any(|e| e.tid == 1 && e.name == "mandelbrot"));
    assert!(
        events
            .iter()
            .any(|e| e.tid == transfers && e.name.starts_with("to host")),
        "the image came home: {events:?}"
    );

    let path = std::env::temp_dir().join(format!("pel-trace-{}.json", std::process::id()));
    rt.write_trace(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"traceEvents\""));
    assert!(text.contains("\"thread_name\""));
    assert!(
        text.contains("\"name\":\"cpu\""),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(text.contains("\"name\":\"transfers\""));
    assert!(text.contains("\"ph\":\"X\""));
}
