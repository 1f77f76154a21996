//! The `pel` command line, run as a user would.

// The root package's test helpers: one runtime, and its GPUs or a loud skip.
#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::{Command, Output};

fn pel(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let xdg = std::env::temp_dir().join("pel-xdg-runtime");
    let _ = std::fs::create_dir_all(&xdg);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pel"));
    let models = std::env::temp_dir().join(format!("pel-cli-models-{}", std::process::id()));
    cmd.args(args)
        .env("XDG_RUNTIME_DIR", xdg)
        .env("PEL_MODEL_DIR", models);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("pel runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn list_names_every_sample_kernel_first_on_its_line() {
    let o = pel(&["list"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        .collect();
    for k in ["saxpy", "sum", "matmul", "mandelbrot"] {
        assert!(names.iter().any(|n| n == k), "{k} missing from {names:?}");
    }
}

#[test]
fn devices_lists_the_cpu_and_honours_pel_gpu_off() {
    let o = pel(&["devices"], &[("PEL_GPU", "off")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let backends: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("cpu") || w.starts_with("gpu"))
        .collect();
    assert_eq!(backends, ["cpu"], "{out}");
    assert!(out.contains("no GPU adapter"), "{out}");

    let o = pel(&["devices"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.lines().next().unwrap_or("").starts_with("cpu"), "{out}");
    if !common::gpus(common::rt(), "devices_lists_a_gpu").is_empty() {
        assert!(out.lines().any(|l| l.starts_with("gpu0")), "{out}");
        assert!(out.contains("max storage binding"), "{out}");
    }
}

#[test]
fn run_verifies_each_first_kernel_on_the_cpu_and_the_gpu() {
    let mut backends = vec!["cpu"];
    if !common::gpus(common::rt(), "run_verifies_on_the_gpu").is_empty() {
        backends.push("gpu");
    }
    for k in ["saxpy", "sum", "matmul", "mandelbrot"] {
        let size = if k == "matmul" { "67" } else { "100003" };
        for b in &backends {
            let o = pel(&["run", k, "--size", size, "--backend", b], &[]);
            let out = stdout(&o);
            assert!(
                o.status.success(),
                "pel run {k} --backend {b}: {out}{}",
                stderr(&o)
            );
            assert!(out.contains("verified"), "{out}");
            let want = if *b == "cpu" { " on cpu" } else { " on gpu0" };
            assert!(out.contains(want), "{out}");
        }
    }
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &["run", "nosuch"][..],
        &["run", "saxpy", "--size", "many"],
        &["run", "saxpy", "--backend", "tpu"],
        &["frobnicate"],
    ] {
        let o = pel(args, &[]);
        assert_eq!(o.status.code(), Some(2), "pel {args:?}: {}", stderr(&o));
        assert!(!stderr(&o).trim().is_empty(), "pel {args:?} says why");
    }
    let o = pel(&["run", "nosuch"], &[]);
    assert!(
        stderr(&o).contains("saxpy"),
        "lists the kernels: {}",
        stderr(&o)
    );
    let o = pel(
        &["run", "saxpy", "--backend", "gpu3"],
        &[("PEL_GPU", "off")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("gpu3"), "{}", stderr(&o));
}

#[test]
fn a_corrupted_model_file_warns_and_run_still_verifies() {
    let dir = std::env::temp_dir().join(format!("pel-cli-model-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let env = [("PEL_MODEL_DIR", dir.to_str().unwrap()), ("PEL_GPU", "off")];
    let o = pel(&["model", "path"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let path = stdout(&o).trim().to_owned();
    assert!(path.starts_with(dir.to_str().unwrap()), "{path}");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&path, "{ not a model").unwrap();

    let o = pel(&["run", "saxpy", "--size", "10007"], &env);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("warning"), "{}", stderr(&o));
    assert!(stdout(&o).contains("verified"), "{}", stdout(&o));
    // A second run: the first sample of an entry is dropped as warm-up.
    let o = pel(&["run", "saxpy", "--size", "10007"], &env);
    assert!(o.status.success(), "{}", stderr(&o));

    // The file was replaced by a good one; `model show` lists the kernel.
    let o = pel(&["model", "show"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    assert!(stdout(&o).contains("saxpy"), "{}", stdout(&o));

    let o = pel(&["model", "reset"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = pel(&["model", "show"], &env);
    assert!(!stdout(&o).contains("| saxpy"), "{}", stdout(&o));
}

#[test]
fn bench_routing_quick_writes_json() {
    let dir = std::env::temp_dir().join(format!("pel-cli-bench-{}", std::process::id()));
    let json = dir.join("routing.json");
    let _ = std::fs::create_dir_all(&dir);
    let o = pel(
        &[
            "bench",
            "routing",
            "--quick",
            "--reps",
            "1",
            "--kernel",
            "saxpy",
            "--json",
            json.to_str().unwrap(),
        ],
        &[("PEL_MODEL_DIR", dir.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let text = std::fs::read_to_string(&json).unwrap();
    for key in [
        "\"points\"",
        "\"regret_total\"",
        "\"regret_max\"",
        "\"calibration_runs\"",
        "\"cpu_s\"",
        "\"auto_s\"",
        "\"choice\"",
    ] {
        assert!(text.contains(key), "{key} missing: {text}");
    }
}

/// `pel bench --quick`: every suite runs to the end and writes JSON, CSV
/// and plots that parse. A smoke test of the harness, with no bound on time
/// (that is the benchmarks' job).
#[test]
fn bench_quick_runs_every_suite_and_writes_json_csv_and_plots() {
    let dir = std::env::temp_dir().join(format!("pel-cli-bench-all-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (json, csv, plots) = (dir.join("all.json"), dir.join("all.csv"), dir.join("plots"));
    let o = pel(
        &[
            "bench",
            "--quick",
            "--json",
            json.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
            "--plot",
            plots.to_str().unwrap(),
        ],
        &[("PEL_MODEL_DIR", dir.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    for heading in ["## kernels", "## peers", "## routing", "## graph"] {
        assert!(out.contains(heading), "{heading} missing: {out}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    // peers: every key, finite where it is always measured.
    let peers = &report["peers"];
    for key in [
        "gemm_vs_faer",
        "saxpy_vs_rayon",
        "sort_speedup_vs_par_sort",
        "dispatch_overhead_us",
    ] {
        let v = peers[key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{key}: {peers}");
    }
    for key in [
        "gpu_vs_raw_wgpu_saxpy",
        "gpu_vs_raw_wgpu_matmul",
        "chain_vs_raw_wgpu",
        "sort_gpu_waits",
    ] {
        assert!(peers.get(key).is_some(), "{key} missing: {peers}");
    }
    // With a GPU the chains are measured and the sort waits at least once
    // (for its result).
    if let Some(waits) = peers["sort_gpu_waits"].as_u64() {
        assert!(waits >= 1, "{peers}");
        let chain = peers["chain_vs_raw_wgpu"].as_f64().unwrap_or(f64::NAN);
        assert!(chain.is_finite() && chain > 0.0, "{peers}");
    }

    // kernels: every sample kernel at two sizes, with work, times and a
    // CPU roofline; the peers where a kernel has one.
    let kernels = &report["kernels"];
    let cpu = &kernels["roofline"]["cpu"];
    assert!(cpu["bandwidth_gbs"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(cpu["gflops"].as_f64().unwrap() > 0.0, "{cpu}");
    let points = kernels["points"].as_array().unwrap();
    let names: Vec<String> = listed_kernels();
    for name in &names {
        let mine: Vec<_> = points.iter().filter(|p| p["kernel"] == **name).collect();
        assert_eq!(mine.len(), 2, "{name}: {mine:?}");
        for p in mine {
            for key in ["cpu_s", "auto_s", "gflops", "gbs", "bytes"] {
                let v = p[key].as_f64().unwrap_or(f64::NAN);
                assert!(v.is_finite() && v >= 0.0, "{name} {key}: {p}");
            }
            assert!(p["auto_s"].as_f64().unwrap() > 0.0, "{p}");
            let has_peer = matches!(
                name.as_str(),
                "saxpy" | "sum" | "matmul" | "radix_sort" | "radix_sort_pairs"
            );
            assert_eq!(p["peer_s"].is_number(), has_peer, "{p}");
        }
    }
    assert!(report["routing"]["regret_total"].as_f64().is_some());
    assert!(report["graph"]["makespan_ratio"].as_f64().is_some());

    // CSV: a header, then one row per median, six fields each.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("suite,kernel,size,shape,mode,seconds"));
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() > 3 * points.len(), "{} rows", rows.len());
    for suite in ["kernels,", "peers,", "routing,", "graph,"] {
        assert!(rows.iter().any(|r| r.starts_with(suite)), "no {suite} rows");
    }
    for r in rows.iter().filter(|r| !r.contains('"')) {
        assert_eq!(r.split(',').count(), 6, "{r}");
        let secs: f64 = r.rsplit(',').next().unwrap().parse().unwrap();
        assert!(secs > 0.0, "{r}");
    }

    // One SVG per kernel.
    for name in &names {
        let svg = std::fs::read_to_string(plots.join(format!("{name}.svg")))
            .unwrap_or_else(|e| panic!("{name}.svg: {e}"));
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{name}.svg"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sample kernels' names, as `pel list` prints them.
fn listed_kernels() -> Vec<String> {
    let o = pel(&["list"], &[]);
    stdout(&o)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn validate_prints_bindings_or_the_line_of_the_error() {
    let dir = std::env::temp_dir().join(format!("pel-cli-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A sample's name stands for its whole source as pel builds it.
    let o = pel(&["validate", "saxpy"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for row in [
        "| 0 | 0 | x | read | array<f32> |",
        "| 0 | 1 | y | read_write | array<f32> |",
        "| 0 | 2 | p | uniform | params, 8 bytes |",
        "grid: takes @builtin(num_workgroups)",
    ] {
        assert!(out.contains(row), "{row} missing: {out}");
    }
    // `pel shader` prints that source; as a file it validates the same.
    let o = pel(&["shader", "saxpy"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let whole = stdout(&o);
    let good = dir.join("saxpy.wgsl");
    std::fs::write(&good, &whole).unwrap();
    let o = pel(&["validate", good.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("| 0 | 2 | p | uniform | params, 8 bytes |"));
    // An error names its line and column.
    let line = 1 + whole
        .lines()
        .position(|l| l.contains("fma(p.a, x[i], y[i])"))
        .expect("saxpy's fma line");
    let column = 1 + whole.lines().nth(line - 1).unwrap().find("y[i])").unwrap();
    let broken = dir.join("broken.wgsl");
    std::fs::write(
        &broken,
        whole.replace("fma(p.a, x[i], y[i])", "fma(p.a, x[i], nowhere)"),
    )
    .unwrap();
    let o = pel(&["validate", broken.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("line {line}, column {column}")) && err.contains("nowhere"),
        "{err}"
    );
    // The bare file in shaders/ lacks what pel appends, and the error says
    // how to check it whole.
    let bare = concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/saxpy.wgsl");
    let o = pel(&["validate", bare], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("`pel validate saxpy`"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shader_lists_every_sample_shader_and_refuses_an_unknown_one() {
    let o = pel(&["shader"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(names.len(), 19, "{names:?}");
    // Each validates whole, at `main` or at every entry point it lists.
    for name in &names {
        let o = pel(&["validate", name], &[]);
        if o.status.success() {
            continue;
        }
        let err = stderr(&o);
        let (_, entries) = err
            .split_once("compute entry points: ")
            .unwrap_or_else(|| panic!("{name}: {err}"));
        for entry in entries.trim().trim_end_matches(')').split(", ") {
            let o = pel(&["validate", name, "--entry", entry], &[]);
            assert!(o.status.success(), "{name} at {entry}: {}", stderr(&o));
        }
    }
    let o = pel(&["shader", "nowhere"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn tour_of_one_kernel_prints_its_row_and_writes_csv() {
    let csv = std::env::temp_dir().join(format!("pel-cli-tour-{}.csv", std::process::id()));
    let o = pel(
        &[
            "tour",
            "--kernel",
            "saxpy",
            "--reps",
            "1",
            "--csv",
            csv.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 2, "the header and saxpy's row: {out}");
    assert!(
        rows[1].starts_with("| saxpy") && rows[1].contains("| yes"),
        "{out}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("suite,kernel,size,shape,mode,seconds\ntour,saxpy,"));
    assert!(text.contains(",auto,"), "{text}");
    let _ = std::fs::remove_file(&csv);

    let o = pel(&["tour", "--kernel", "nosuch"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn trace_writes_chrome_trace_events() {
    let out = std::env::temp_dir().join(format!("pel-cli-trace-{}.json", std::process::id()));
    let o = pel(&["trace", "--out", out.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("\"traceEvents\"") && text.contains("\"thread_name\""),
        "{text}"
    );
    assert!(text.contains("\"name\":\"saxpy\""), "{text}");
}
