//! The model file: one JSON document per machine and adapter set, written
//! atomically (a temp file, then a rename). Anything wrong with a file (not
//! JSON, another version, hostile numbers, an unwritable directory) costs a
//! warning, never a crash, and nothing doubtful is loaded:
//!
//! - **The whole file** is refused (a fresh model) when it is not a pel
//!   model of this version: not JSON, or another `version`.
//! - **One entry** is refused, whole, when a value in it is one no run can
//!   produce: a time that is zero, negative, subnormal, NaN, infinite or
//!   over a day (a sample, a split run); a size over 2^56; more samples or
//!   split runs than the model keeps; a call count over 10^15; a bus
//!   latency or bandwidth outside what any bus has; a readback count with
//!   more downloads than runs; a split share outside [0.01, 0.99]; a kernel
//!   id that is not 16 hex digits. An entry is one kernel's samples on one
//!   device (one bucket), one bus, one kernel's readback counts, one split
//!   or one exclusion. It is never trimmed to its plausible part: a sample
//!   list with one impossible time is not a measurement to trust either.
//!   The other entries load, since each was measured on its own and passed
//!   the same checks, and refusing them would cost a calibration of every
//!   kernel. The warning names the file, the entry and the value.
//! - Entries for a device this runtime does not have are skipped without a
//!   word: a model shipped from another machine is not damaged.
//!
//! What pel records itself stays within these bounds, so a file it wrote is
//! never refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::profile::{self, Entry, Profile, Sample, bucket};
use super::split::SplitEntry;
use super::{Dispatcher, Excluded, TransferModel};

/// The file format's version; files of any other are ignored with a warning.
pub(crate) const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    /// The devices this model describes, in backend order.
    devices: Vec<String>,
    #[serde(default)]
    bus: BTreeMap<String, TransferModel>,
    #[serde(default)]
    entries: Vec<FileEntry>,
    /// Per kernel (16 hex digits): [GPU runs, downloads of their outputs].
    #[serde(default)]
    readback: BTreeMap<String, (u64, u64)>,
    /// Co-execution shares.
    #[serde(default)]
    splits: Vec<FileSplit>,
    /// (kernel, device) pairs excluded for good.
    #[serde(default)]
    excluded: Vec<FileExclusion>,
}

#[derive(Serialize, Deserialize)]
struct FileExclusion {
    /// Kernel identity, 16 hex digits.
    kernel: String,
    /// Device key.
    device: String,
    /// What went wrong there.
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct FileSplit {
    /// Kernel identity, 16 hex digits.
    kernel: String,
    /// Size bucket.
    bucket: i32,
    /// Device key of the GPU.
    device: String,
    /// The GPU's share and the latest split runs.
    #[serde(flatten)]
    entry: SplitEntry,
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    /// Kernel identity, 16 hex digits.
    kernel: String,
    /// Kernel name, for people.
    name: String,
    /// Device key.
    device: String,
    /// Calls recorded.
    calls: u64,
    /// `[size, seconds]` pairs.
    samples: Vec<(u64, f64)>,
}

/// What a file holds, mapped onto this runtime's devices.
#[derive(Default)]
pub(crate) struct Loaded {
    pub(crate) profile: Profile,
    pub(crate) names: BTreeMap<u64, String>,
    pub(crate) bus: Vec<Option<TransferModel>>,
    pub(crate) readback: BTreeMap<u64, (u64, u64)>,
    pub(crate) splits: BTreeMap<(u64, i32, usize), SplitEntry>,
    pub(crate) excluded: BTreeMap<(u64, usize), Excluded>,
    /// One line per entry refused, naming the file, the entry and the value.
    pub(crate) warnings: Vec<String>,
}

/// Where the model of this device set lives: `model_dir` (`PEL_MODEL_DIR`), else the
/// user's cache directory, named by a hash of the device keys.
pub(crate) fn default_path(model_dir: Option<&Path>, device_keys: &[String]) -> Option<PathBuf> {
    let dir = match model_dir {
        Some(d) => d.to_owned(),
        None => cache_dir()?.join("pel"),
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in device_keys.join("\n").bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Some(dir.join(format!("model-{h:016x}.json")))
}

fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if cfg!(windows) {
        env("LOCALAPPDATA")
    } else if cfg!(target_os = "macos") {
        env("HOME").map(|h| h.join("Library/Caches"))
    } else {
        env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|h| h.join(".cache")))
    }
}

/// Longest exclusion reason kept, in characters.
const REASON_CHARS: usize = 1024;

/// What is wrong with a profile entry read from a file, if anything.
fn entry_flaw(e: &FileEntry) -> Option<String> {
    if e.calls > profile::MAX_CALLS {
        return Some(format!(
            "{} calls, more than {:e}",
            e.calls,
            profile::MAX_CALLS as f64
        ));
    }
    if e.samples.len() > profile::KEEP {
        return Some(format!(
            "{} samples, more than the {} kept",
            e.samples.len(),
            profile::KEEP
        ));
    }
    let n = e.samples.len();
    for (i, &(size, secs)) in e.samples.iter().enumerate() {
        if size > profile::MAX_SIZE {
            return Some(format!(
                "sample {} of {n} has size {size}, over 2^56",
                i + 1
            ));
        }
        if !profile::physical_secs(secs) {
            return Some(format!(
                "sample {} of {n} took {secs:e} s, outside {}",
                i + 1,
                profile::SECS_RANGE
            ));
        }
    }
    None
}

/// A string from the file as a message shows it: escaped, and cut short.
fn shown(text: &str) -> String {
    let mut s: String = text.chars().take(64).flat_map(char::escape_debug).collect();
    if text.chars().count() > 64 {
        s.push('…');
    }
    s
}

/// `16 hex digits` → the kernel's identity.
fn kernel_id(hex: &str) -> Option<u64> {
    (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// Reads `path` for the devices `keys`. `Ok(None)` when there is no file.
pub(crate) fn load(path: &Path, keys: &[String]) -> Result<Option<Loaded>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    parse(&text, keys, &path.display().to_string()).map(Some)
}

/// Reads a model file's text (from `origin`, for messages) for the devices
/// `keys`, refusing whatever is damaged or hostile (see the module
/// documentation): `Err` for the whole file, else what loaded and a
/// warning per entry refused.
pub(crate) fn parse(text: &str, keys: &[String], origin: &str) -> Result<Loaded, String> {
    let file: File =
        serde_json::from_str(text).map_err(|e| format!("{origin} is not a pel model: {e}"))?;
    if file.version != VERSION {
        return Err(format!(
            "{origin} is model version {}, this pel reads version {VERSION}",
            file.version
        ));
    }
    let index = |key: &str| keys.iter().position(|k| k == key);
    let gpus = keys.len().saturating_sub(1);
    let mut loaded = Loaded {
        bus: vec![None; gpus],
        ..Loaded::default()
    };
    let mut warnings = Vec::new();
    let mut refuse = |entry: String, flaw: String| {
        warnings.push(format!("{origin}: {entry}: {flaw}; not loaded"));
    };

    for (key, tm) in file.bus {
        let Some(g) = index(&key).filter(|&d| d > 0).map(|d| d - 1) else {
            continue;
        };
        let flaw = tm
            .h2d
            .flaw()
            .map(|f| format!("host to GPU {f}"))
            .or_else(|| tm.d2h.flaw().map(|f| format!("GPU to host {f}")));
        match flaw {
            Some(f) => refuse(
                format!("bus of `{key}`"),
                format!("{f} (it will be measured again)"),
            ),
            None => loaded.bus[g] = Some(tm),
        }
    }

    for (n, e) in file.entries.into_iter().enumerate() {
        let Some(device) = index(&e.device) else {
            continue;
        };
        let what = format!(
            "entry {} (kernel `{}` {}, on `{}`)",
            n + 1,
            shown(&e.name),
            shown(&e.kernel),
            e.device
        );
        let Some(kernel) = kernel_id(&e.kernel) else {
            refuse(what, "the kernel id is not 16 hex digits".into());
            continue;
        };
        if let Some(f) = entry_flaw(&e) {
            refuse(what, f);
            continue;
        }
        let mut by_bucket: BTreeMap<i32, Entry> = BTreeMap::new();
        for (size, secs) in e.samples {
            let entry = by_bucket.entry(bucket(size)).or_default();
            entry.calls = e.calls;
            entry.samples.push_back(Sample { size, secs });
        }
        for (b, mut entry) in by_bucket {
            entry.refresh();
            loaded.profile.insert((kernel, device, b), entry);
        }
        let name: String = e.name.chars().take(128).collect();
        loaded.names.insert(kernel, name);
    }

    for (k, (runs, downloads)) in file.readback {
        let what = format!("readback of kernel {}", shown(&k));
        let Some(kernel) = kernel_id(&k) else {
            refuse(what, "the kernel id is not 16 hex digits".into());
            continue;
        };
        if runs > profile::MAX_CALLS {
            refuse(
                what,
                format!("{runs} GPU runs, more than {:e}", profile::MAX_CALLS as f64),
            );
        } else if downloads > runs {
            refuse(
                what,
                format!("{downloads} downloads of the outputs of {runs} GPU runs"),
            );
        } else {
            loaded.readback.insert(kernel, (runs, downloads));
        }
    }

    for s in file.splits {
        let Some(device) = index(&s.device) else {
            continue;
        };
        let what = format!(
            "split of kernel {} at bucket {} with `{}`",
            shown(&s.kernel),
            s.bucket,
            s.device
        );
        let Some(kernel) = kernel_id(&s.kernel) else {
            refuse(what, "the kernel id is not 16 hex digits".into());
            continue;
        };
        let flaw = if device == 0 {
            Some("the device is not a GPU".to_owned())
        } else if !(0..1024).contains(&s.bucket) {
            Some(format!("bucket {} is outside 0 to 1023", s.bucket))
        } else {
            s.entry.flaw()
        };
        match flaw {
            Some(f) => refuse(what, f),
            None => {
                loaded
                    .splits
                    .insert((kernel, s.bucket, device - 1), s.entry);
            }
        }
    }

    for x in file.excluded {
        let Some(device) = index(&x.device) else {
            continue;
        };
        let Some(kernel) = kernel_id(&x.kernel) else {
            refuse(
                format!("exclusion of kernel {} on `{}`", shown(&x.kernel), x.device),
                "the kernel id is not 16 hex digits".into(),
            );
            continue;
        };
        // The reason is printed in messages: one line, of a sane length.
        let reason: String = x
            .reason
            .chars()
            .take(REASON_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        loaded.excluded.insert(
            (kernel, device),
            Excluded {
                reason,
                permanent: true,
            },
        );
    }

    loaded.warnings = warnings;
    Ok(loaded)
}

/// The model of `d` as the file's text.
pub(crate) fn to_json(d: &Dispatcher) -> Result<String, String> {
    let keys = &d.keys;
    let mut entries: Vec<FileEntry> = d
        .profile
        .iter()
        .filter(|(_, e)| !e.samples.is_empty())
        .map(|((kernel, device, _), e)| FileEntry {
            kernel: format!("{kernel:016x}"),
            name: d.names.get(&kernel).cloned().unwrap_or_default(),
            device: keys[device].clone(),
            calls: e.calls,
            samples: e.samples.iter().map(|s| (s.size, s.secs)).collect(),
        })
        .collect();
    entries.sort_by(|a, b| {
        (&a.name, &a.device, &a.samples[0].0).cmp(&(&b.name, &b.device, &b.samples[0].0))
    });
    let file = File {
        version: VERSION,
        devices: keys.to_vec(),
        bus: d
            .bus
            .iter()
            .enumerate()
            .filter_map(|(g, t)| t.map(|t| (keys[g + 1].clone(), t)))
            .collect(),
        entries,
        // A kernel with two outputs can be read back twice per run; the
        // file keeps the counts a reader accepts (the probability they give
        // is capped at one anyway).
        readback: d
            .readback
            .iter()
            .map(|(k, &(runs, downloads))| (format!("{k:016x}"), (runs, downloads.min(runs))))
            .collect(),
        splits: d
            .splits
            .iter()
            .filter(|((_, _, g), _)| g + 1 < keys.len())
            .map(|(&(k, b, g), e)| FileSplit {
                kernel: format!("{k:016x}"),
                bucket: b,
                device: keys[g + 1].clone(),
                entry: e.clone(),
            })
            .collect(),
        excluded: d
            .excluded
            .iter()
            .filter(|((_, dev), x)| x.permanent && *dev < keys.len())
            .map(|(&(k, dev), x)| FileExclusion {
                kernel: format!("{k:016x}"),
                device: keys[dev].clone(),
                reason: x.reason.clone(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&file).map_err(|e| e.to_string())
}

/// Writes the model of `d` to `path` atomically.
pub(crate) fn save(path: &Path, d: &Dispatcher) -> Result<(), String> {
    let json = to_json(d)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // One temp name per save, so two runtimes of one process saving the same
    // file at once never write into each other's temp file.
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("json.tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, json).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
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
        let link = Link {
            latency_s: 1e-5,
            bytes_per_s: 1e10,
        };
        d.bus[0] = Some(TransferModel {
            h2d: link,
            d2h: link,
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
}
