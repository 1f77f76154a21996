//! pel's WGSL prelude: functions a shader may call so that its index stays
//! right however pel shapes the launch (above 65,535 workgroups pel folds
//! the grid into 2-D, and a shader indexing by `id.x` alone would skip
//! half the elements). This module owns the prelude's text and deciding
//! whether a shader gets it; the GPU sets its overrides when it builds the
//! pipeline (`device/gpu.rs`).
//!
//! The prelude goes after the user's code, never before, so that naga's line
//! numbers in errors (and in `pel validate`) are the lines the user wrote.

/// The prelude's pipeline-overridable constants: the entry point's
/// `@workgroup_size`, which the GPU sets from the reflection. They have no
/// default, so a pipeline built without them fails instead of indexing wrong.
pub(crate) const WORKGROUP_OVERRIDES: [&str; 3] =
    ["pel_workgroup_x", "pel_workgroup_y", "pel_workgroup_z"];

/// The functions the prelude offers; a shader that calls one of them gets it.
const FUNCTIONS: [&str; 2] = ["pel_index", "pel_workgroup_index"];

/// Every other name the prelude declares.
const OTHER_NAMES: [&str; 4] = [
    "pel_workgroup_x",
    "pel_workgroup_y",
    "pel_workgroup_z",
    "pel_workgroup_invocations",
];

/// Appended to a shader that calls one of [`FUNCTIONS`].
///
/// `pel_index` is the invocation's place in pel's linear numbering: the
/// workgroup's linear number times the invocations per workgroup, plus the
/// invocation's index inside it. For a 1-D workgroup of `WG` it is
/// `id.x + id.y * groups.x * WG`; for 2-D and 3-D workgroups it still counts
/// every invocation once, as [`Grid::Invocations`](super::Grid) sizes them.
const PRELUDE: &str = "
// ---- pel prelude: appended by pel because the shader calls pel_index or
// ---- pel_workgroup_index. The pel_workgroup_* overrides are set by pel to
// ---- the entry point's @workgroup_size when it builds the pipeline.
// (No vec3 is built of overrides alone: naga 30's override processing
// rejects a function holding one, ExpressionAlreadyInScope.)
override pel_workgroup_x: u32;
override pel_workgroup_y: u32;
override pel_workgroup_z: u32;
override pel_workgroup_invocations: u32 = pel_workgroup_x * pel_workgroup_y * pel_workgroup_z;

fn pel_workgroup_index(wid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wid.x + groups.x * (wid.y + groups.y * wid.z);
}

fn pel_index(id: vec3<u32>, groups: vec3<u32>) -> u32 {
    let wid = vec3<u32>(id.x / pel_workgroup_x, id.y / pel_workgroup_y, id.z / pel_workgroup_z);
    let local = id.x % pel_workgroup_x
        + pel_workgroup_x * (id.y % pel_workgroup_y + pel_workgroup_y * (id.z % pel_workgroup_z));
    return pel_workgroup_index(wid, groups) * pel_workgroup_invocations + local;
}
";

/// `source` with the prelude appended, where it calls a prelude function and
/// defines none of the prelude's names itself; `None` where it needs none.
pub(crate) fn compose(source: &str) -> Option<String> {
    let mut calls = false;
    let mut prev = "";
    for word in words(source) {
        let declares = matches!(
            prev,
            "fn" | "override" | "const" | "var" | "let" | "alias" | "struct"
        );
        let ours = FUNCTIONS.contains(&word) || OTHER_NAMES.contains(&word);
        if ours && declares {
            // The shader brings its own: appending ours would redefine it.
            return None;
        }
        calls |= FUNCTIONS.contains(&word);
        prev = word;
    }
    if !calls {
        return None;
    }
    let mut composed = String::with_capacity(source.len() + PRELUDE.len() + 1);
    composed.push_str(source);
    if !source.ends_with('\n') {
        composed.push('\n');
    }
    composed.push_str(PRELUDE);
    Some(composed)
}

/// The identifiers and keywords of WGSL `source`, comments skipped (a
/// comment that mentions `pel_index` is not a call).
fn words(source: &str) -> impl Iterator<Item = &str> {
    let bytes = source.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            if bytes[i..].starts_with(b"//") {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            } else if bytes[i..].starts_with(b"/*") {
                // WGSL block comments nest.
                let mut depth = 0;
                while i < bytes.len() {
                    if bytes[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if bytes[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            } else if bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                return Some(&source[start..i]);
            } else {
                i += 1;
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::compose;

    #[test]
    fn a_call_gets_the_prelude_after_the_users_lines() {
        let src = "fn main() { let i = pel_index(id, groups); }";
        let composed = compose(src).expect("a call gets the prelude");
        assert!(composed.starts_with(src));
        assert!(composed.contains("fn pel_index("));
        assert!(compose("fn main() { let w = pel_workgroup_index(wid, g); }").is_some());
    }

    #[test]
    fn no_call_or_an_own_definition_gets_none() {
        assert_eq!(compose("fn main() { let i = id.x; }"), None);
        assert_eq!(compose("// pel_index(id, groups)\nfn main() {}"), None);
        assert_eq!(
            compose("/* a /* nested */ pel_index( */ fn main() {}"),
            None
        );
        assert_eq!(
            compose(
                "fn pel_index(a: vec3<u32>, b: vec3<u32>) -> u32 { return a.x; }\nfn main() { pel_index(x, y); }"
            ),
            None
        );
        assert_eq!(
            compose("override pel_workgroup_x: u32 = 64u;\nfn main() { pel_index(x, y); }"),
            None
        );
    }

    /// What wgpu does with the prelude on every backend: set the overrides
    /// and evaluate them away. It must come out valid.
    #[test]
    fn the_prelude_survives_override_processing() {
        for size in ["64", "8, 8", "4, 2, 8"] {
            let src = compose(&format!(
                "@group(0) @binding(0) var<storage, read_write> y: array<u32>;
@compute @workgroup_size({size})
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {{
    let i = pel_index(id, groups);
    if i < arrayLength(&y) {{ y[i] = pel_workgroup_index(wid, groups); }}
}}"
            ))
            .unwrap();
            let module = naga::front::wgsl::parse_str(&src).unwrap();
            let info = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::default(),
            )
            .validate(&module)
            .unwrap();
            let constants = super::WORKGROUP_OVERRIDES
                .iter()
                .map(|&name| (name.to_owned(), 4.0))
                .collect();
            let stage = Some((naga::ShaderStage::Compute, "main"));
            if let Err(e) =
                naga::back::pipeline_constants::process_overrides(&module, &info, stage, &constants)
            {
                panic!("@workgroup_size({size}): {e:?}");
            }
        }
    }
}
