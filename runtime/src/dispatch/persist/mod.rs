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

use std::collections::{BTreeMap, BTreeSet};
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
    /// Implementations set aside on a device near a size: measured well
    /// behind another there, not explored again.
    #[serde(default)]
    set_aside: Vec<FileSetAside>,
}

#[derive(Serialize, Deserialize)]
struct FileSetAside {
    /// Implementation identity (a kernel's or a variant's), 16 hex digits.
    kernel: String,
    /// Device key.
    device: String,
    /// Size bucket.
    bucket: i32,
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
    pub(crate) set_aside: BTreeSet<(u64, usize, i32)>,
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
    let mut h = crate::hash::Fnv::new();
    h.write(device_keys.join("\n").as_bytes());
    Some(dir.join(format!("model-{:016x}.json", h.finish())))
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

    for a in file.set_aside {
        let Some(device) = index(&a.device) else {
            continue;
        };
        let what = format!(
            "set-aside of kernel {} at bucket {} on `{}`",
            shown(&a.kernel),
            a.bucket,
            a.device
        );
        match kernel_id(&a.kernel) {
            None => refuse(what, "the kernel id is not 16 hex digits".into()),
            Some(_) if !(0..1024).contains(&a.bucket) => {
                refuse(what, format!("bucket {} is outside 0 to 1023", a.bucket))
            }
            Some(kernel) => {
                loaded.set_aside.insert((kernel, device, a.bucket));
            }
        }
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
            samples: e
                .saved_samples(d.min_samples)
                .iter()
                .map(|s| (s.size, s.secs))
                .collect(),
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
        set_aside: d
            .set_aside
            .iter()
            .filter(|(_, dev, _)| *dev < keys.len())
            .map(|&(k, dev, bucket)| FileSetAside {
                kernel: format!("{k:016x}"),
                device: keys[dev].clone(),
                bucket,
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
mod tests;
