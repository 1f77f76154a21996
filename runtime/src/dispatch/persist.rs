//! The model file: one JSON document per machine and adapter set, written
//! atomically (a temp file, then a rename). Anything wrong with a file (not
//! JSON, another version, hostile numbers, an unwritable directory) costs a
//! warning and a fresh model, never a crash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::profile::{Entry, Profile, Sample, bucket};
use super::split::SplitEntry;
use super::{Link, TransferModel};

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
}

/// Where the model of this device set lives: `PEL_MODEL_DIR`, else the
/// user's cache directory, named by a hash of the device keys.
pub(crate) fn default_path(device_keys: &[String]) -> Option<PathBuf> {
    let dir = match std::env::var_os("PEL_MODEL_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => cache_dir()?.join("pel"),
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

fn sane_secs(s: f64) -> bool {
    s.is_finite() && s > 0.0 && s < 1e6
}

fn sane_link(l: &Link) -> bool {
    l.latency_s.is_finite()
        && (0.0..10.0).contains(&l.latency_s)
        && l.bytes_per_s.is_finite()
        && l.bytes_per_s > 1.0
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
/// `keys`, dropping whatever is damaged or hostile.
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
    let mut loaded = Loaded {
        bus: vec![None; keys.len().saturating_sub(1)],
        ..Loaded::default()
    };
    for (key, tm) in file.bus {
        if let Some(d) = index(&key).filter(|&d| d > 0) {
            if sane_link(&tm.h2d) && sane_link(&tm.d2h) {
                loaded.bus[d - 1] = Some(tm);
            }
        }
    }
    for e in file.entries {
        let (Some(device), Ok(kernel)) = (index(&e.device), u64::from_str_radix(&e.kernel, 16))
        else {
            continue;
        };
        // Hostile or damaged numbers are dropped, sample by sample.
        let samples: Vec<Sample> = e
            .samples
            .into_iter()
            .filter(|&(n, s)| n > 0 && sane_secs(s))
            .map(|(size, secs)| Sample { size, secs })
            .collect();
        let mut by_bucket: BTreeMap<i32, Entry> = BTreeMap::new();
        for s in samples {
            let entry = by_bucket.entry(bucket(s.size)).or_default();
            entry.calls = e.calls.min(u32::MAX as u64);
            entry.samples.push_back(s);
        }
        for (b, mut entry) in by_bucket {
            while entry.samples.len() > 32 {
                entry.samples.pop_front();
            }
            entry.refresh();
            loaded.profile.insert((kernel, device, b), entry);
        }
        let name: String = e.name.chars().take(128).collect();
        loaded.names.insert(kernel, name);
    }
    for (k, (runs, downloads)) in file.readback {
        if let Ok(k) = u64::from_str_radix(&k, 16) {
            loaded.readback.insert(k, (runs, downloads.min(runs)));
        }
    }
    let gpus = keys.len().saturating_sub(1);
    for s in file.splits {
        let (Some(device), Ok(kernel)) = (index(&s.device), u64::from_str_radix(&s.kernel, 16))
        else {
            continue;
        };
        if device == 0 || device > gpus || !(0..1024).contains(&s.bucket) {
            continue;
        }
        if s.entry.sane() {
            loaded
                .splits
                .insert((kernel, s.bucket, device - 1), s.entry);
        }
    }
    Ok(loaded)
}

/// Writes the model atomically.
pub(crate) fn save(
    path: &Path,
    keys: &[String],
    profile: &Profile,
    names: &BTreeMap<u64, String>,
    bus: &[Option<TransferModel>],
    readback: &BTreeMap<u64, (u64, u64)>,
    splits: &BTreeMap<(u64, i32, usize), SplitEntry>,
) -> Result<(), String> {
    let mut entries: Vec<FileEntry> = profile
        .iter()
        .filter(|(_, e)| !e.samples.is_empty())
        .map(|((kernel, device, _), e)| FileEntry {
            kernel: format!("{kernel:016x}"),
            name: names.get(&kernel).cloned().unwrap_or_default(),
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
        bus: bus
            .iter()
            .enumerate()
            .filter_map(|(g, t)| t.map(|t| (keys[g + 1].clone(), t)))
            .collect(),
        entries,
        readback: readback
            .iter()
            .map(|(k, v)| (format!("{k:016x}"), *v))
            .collect(),
        splits: splits
            .iter()
            .filter(|((_, _, g), _)| g + 1 < keys.len())
            .map(|(&(k, b, g), e)| FileSplit {
                kernel: format!("{k:016x}"),
                bucket: b,
                device: keys[g + 1].clone(),
                entry: e.clone(),
            })
            .collect(),
    };
    let json = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
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
