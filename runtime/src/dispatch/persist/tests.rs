use serde_json::{Value, json};

use super::*;
use crate::dispatch::{Link, TransferModel};
use crate::ids::Backend;

const CPU: Backend = Backend::Cpu;
const GPU: Backend = Backend::Gpu(0);

/// A model with one of everything: entries for kernel 1 on both
/// devices and kernel 2 on the CPU, a bus, readback counts, a split.
fn model() -> Value {
    let mut d = Dispatcher::new(vec!["cpu".into(), "gpu-a".into()], 5, None);
    for _ in 0..6 {
        d.record(1, "k", CPU, 1000, 3e-3);
        d.record(1, "k", GPU, 1000, 1e-3);
        d.record(2, "j", CPU, 1000, 2e-3);
    }
    d.note_readback(1);
    d.record_split(1, 1000, 0, 0.5, 1e-3, 1e-3, 1e-3);
    d.bus[0] = crate::dispatch::tests::bus(Link {
        latency_s: 1e-5,
        bytes_per_s: 1e10,
    });
    serde_json::from_str(&to_json(&d).unwrap()).unwrap()
}

fn load(file: &Value) -> Loaded {
    let keys = ["cpu".to_owned(), "gpu-a".to_owned()];
    parse(&file.to_string(), &keys, "model.json").unwrap()
}

/// The index in `entries` of kernel `kernel`'s entry on `device`.
fn entry(file: &Value, kernel: u64, device: &str) -> usize {
    let id = format!("{kernel:016x}");
    file["entries"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| e["kernel"] == id.as_str() && e["device"] == device)
        .unwrap()
}

/// Damage done to entry `usize` of a file.
type Spoil = fn(&mut Value, usize);

/// Asserts one warning, naming the file and containing `what`.
fn warned(loaded: &Loaded, what: &[&str]) {
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert!(
        w.starts_with("model.json: ") && w.ends_with("; not loaded"),
        "{w}"
    );
    for part in what {
        assert!(w.contains(part), "{part:?} not in {w}");
    }
}

#[test]
fn an_intact_file_loads_whole_without_a_word() {
    let loaded = load(&model());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.profile.iter().count(), 3);
    assert!(loaded.bus[0].is_some());
    assert_eq!(loaded.readback.get(&1), Some(&(6, 1)));
    assert_eq!(loaded.splits.len(), 1);
}

#[test]
fn an_entry_with_an_impossible_time_is_dropped_whole() {
    for secs in [
        json!(5e-324),
        json!(1e-12),
        json!(0.0),
        json!(-1e-3),
        json!(1e5),
        json!(1e300),
    ] {
        let mut file = model();
        let i = entry(&file, 1, "gpu-a");
        // One bad sample among good ones condemns the entry.
        file["entries"][i]["samples"][2][1] = secs.clone();
        let loaded = load(&file);
        let gpu_entries = loaded.profile.iter().filter(|((_, d, _), _)| *d == 1);
        assert_eq!(gpu_entries.count(), 0, "{secs}");
        assert_eq!(loaded.profile.iter().count(), 2, "the others load: {secs}");
        warned(
            &loaded,
            &[
                "entry",
                "kernel `k` 0000000000000001",
                "on `gpu-a`",
                "sample 3 of 5",
                "outside 1 ns to 1 day",
            ],
        );
    }
}

#[test]
fn a_number_json_cannot_hold_refuses_the_file() {
    // NaN and infinity have no JSON spelling; one that overflows is not
    // a number serde reads: the whole file is refused.
    let text = model().to_string();
    assert!(text.contains("0.001"), "{text}");
    let keys = ["cpu".to_owned(), "gpu-a".to_owned()];
    for spoilt in ["1e999", "NaN", "Infinity"] {
        let e = parse(&text.replacen("0.001", spoilt, 1), &keys, "model.json")
            .err()
            .unwrap();
        assert!(e.starts_with("model.json is not a pel model"), "{e}");
    }
}

#[test]
fn sizes_counts_and_ids_no_run_produces_drop_their_entry() {
    let cases: [(&str, Spoil, &str); 5] = [
        (
            "size",
            |f, i| f["entries"][i]["samples"][0][0] = json!((1u64 << 56) + 1),
            "size 72057594037927937, over 2^56",
        ),
        (
            "calls",
            |f, i| f["entries"][i]["calls"] = json!(10_000_000_000_000_000u64),
            "10000000000000000 calls, more than 1e15",
        ),
        (
            "samples",
            |f, i| {
                let s = f["entries"][i]["samples"][0].clone();
                f["entries"][i]["samples"] = json!(vec![s; 33]);
            },
            "33 samples, more than the 32 kept",
        ),
        (
            "id",
            |f, i| f["entries"][i]["kernel"] = json!("zz"),
            "kernel id is not 16 hex digits",
        ),
        (
            "short id",
            |f, i| f["entries"][i]["kernel"] = json!("1"),
            "kernel id is not 16 hex digits",
        ),
    ];
    for (name, spoil, message) in cases {
        let mut file = model();
        let i = entry(&file, 2, "cpu");
        spoil(&mut file, i);
        let loaded = load(&file);
        assert!(
            loaded.profile.iter().all(|((k, _, _), _)| k != 2),
            "{name}: kernel 2 loaded"
        );
        assert!(!loaded.names.contains_key(&2), "{name}");
        assert_eq!(loaded.profile.iter().count(), 2, "{name}: the others load");
        warned(&loaded, &["on `cpu`", message]);
    }
}

#[test]
fn a_bus_no_machine_has_is_measured_again() {
    for (way, field, value, message) in [
        ("h2d", "latency_s", json!(5e-324), "latency 5e-324 s"),
        ("h2d", "latency_s", json!(-1.0), "latency -1e0 s"),
        ("d2h", "latency_s", json!(60.0), "latency 6e1 s"),
        ("d2h", "bytes_per_s", json!(0.5), "bandwidth 5e-1 B/s"),
        ("h2d", "bytes_per_s", json!(1e20), "bandwidth 1e20 B/s"),
        ("h2d", "bytes_per_s", json!(-1e9), "bandwidth -1e9 B/s"),
    ] {
        let mut file = model();
        file["bus"]["gpu-a"][way][field] = value;
        let loaded = load(&file);
        assert!(loaded.bus[0].is_none(), "{way}.{field}");
        assert_eq!(loaded.profile.iter().count(), 3, "the entries load");
        warned(&loaded, &["bus of `gpu-a`", message, "measured again"]);
    }
    // No latency at all is a bus pel can measure.
    let mut file = model();
    file["bus"]["gpu-a"]["h2d"]["latency_s"] = json!(0.0);
    assert!(load(&file).bus[0].is_some());
}

#[test]
fn readback_counts_no_run_produces_are_dropped() {
    for (counts, message) in [
        (json!([3, 4]), "4 downloads of the outputs of 3 GPU runs"),
        (
            json!([2_000_000_000_000_000u64, 1]),
            "2000000000000000 GPU runs, more than 1e15",
        ),
    ] {
        let mut file = model();
        file["readback"]["0000000000000001"] = counts;
        let loaded = load(&file);
        assert!(loaded.readback.is_empty());
        warned(&loaded, &["readback of kernel 0000000000000001", message]);
    }
}

#[test]
fn a_split_pel_never_makes_is_dropped() {
    for (field, value, message) in [
        ("share", json!(0.0), "share 0 is outside"),
        ("share", json!(1.0), "share 1 is outside"),
        ("share", json!(1.5), "share 1.5 is outside"),
        ("share", json!(-0.2), "share -0.2 is outside"),
        (
            "times",
            json!([1e-3, 5e-324]),
            "split run 2 of 2 took 5e-324 s",
        ),
        ("times", json!([1e-3, -1.0]), "split run 2 of 2 took -1e0 s"),
        ("times", json!(vec![1e-3; 33]), "33 split runs"),
        ("bucket", json!(5000), "bucket 5000 is outside"),
        ("device", json!("cpu"), "not a GPU"),
    ] {
        let mut file = model();
        file["splits"][0][field] = value;
        let loaded = load(&file);
        assert!(loaded.splits.is_empty(), "{field}");
        warned(&loaded, &["split of kernel 0000000000000001", message]);
    }
}

#[test]
fn a_hostile_name_is_shown_escaped_and_cut() {
    let mut file = model();
    let i = entry(&file, 2, "cpu");
    file["entries"][i]["name"] = json!(format!("evil\nname{}", "x".repeat(500)));
    file["entries"][i]["calls"] = json!(u64::MAX);
    let loaded = load(&file);
    let w = &loaded.warnings[0];
    assert!(!w.contains('\n') && w.contains("evil\\nname"), "{w}");
    assert!(w.len() < 400, "{w}");
}

#[test]
fn what_pel_records_it_loads_again() {
    // Times at the edges of what a run can take, a bus whose readings
    // came out absurd, and a kernel read back more often than run.
    let mut d = Dispatcher::new(vec!["cpu".into(), "gpu-a".into()], 5, None);
    for secs in [1e-9, 2e-9, 86_400.0, 5e-324, 0.0, 1e6, f64::NAN] {
        d.record(1, "k", CPU, 10, secs);
        d.record(1, "k", CPU, (1 << 56) + 1, 1.0);
    }
    d.record(1, "k", GPU, 10, 1e-3);
    for _ in 0..3 {
        d.note_readback(1);
    }
    d.bus[0] = Some(TransferModel {
        h2d: Link::from_two((4096, 1e-6), (1 << 24, 1e-6)),
        d2h: Link::from_two((4096, 1e-3), (1 << 24, 1.0)),
    });
    d.record_split(1, 1000, 0, 0.5, 5e-324, 1e-3, 1e-3);
    let loaded = parse(&to_json(&d).unwrap(), &d.keys, "model.json").unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert!(loaded.bus[0].is_some());
    let samples: usize = loaded.profile.iter().map(|(_, e)| e.samples.len()).sum();
    assert_eq!(samples, 2, "the warm-up and the impossible are not kept");
}
