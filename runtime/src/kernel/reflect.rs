//! Reads a kernel's interface out of its WGSL with naga: the entry point's
//! workgroup size, each storage binding's access mode and element type, and
//! the size of the uniform params block, and what decides whether a GPU
//! launch can be right: whether the entry point can unfold a folded grid and
//! which bindings it takes `arrayLength` of. Only bindings the entry point
//! actually uses count, exactly as wgpu's automatic pipeline layout sees them.

use naga::valid::{Capabilities, GlobalUse, ValidationFlags, Validator};
use naga::{
    AddressSpace, ArraySize, Binding, BuiltIn, Expression, ScalarKind, ShaderStage, StorageAccess,
    TypeInner,
};

use super::signature::{Access, ElemType, Scalar};
use crate::error::{Error, Result};

/// One storage buffer the shader binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageBinding {
    /// The variable's name in the WGSL.
    pub name: String,
    /// `@group(..)`: always 0 today.
    pub group: u32,
    /// `@binding(..)`.
    pub binding: u32,
    /// Read or read-write, as declared.
    pub access: Access,
    /// Element type of the runtime-sized array.
    pub elem: ElemType,
    /// Whether the entry point (or a function it calls) takes
    /// `arrayLength` of this binding. A GPU binds at least 4 bytes even for
    /// an empty buffer, so there `arrayLength` would read 1 where the CPU
    /// sees 0: pel refuses to run such a call with an empty buffer here on
    /// a GPU.
    pub array_length: bool,
}

/// The uniform block holding a kernel's scalar parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniformBinding {
    /// The variable's name in the WGSL.
    pub name: String,
    /// `@binding(..)` in group 0.
    pub binding: u32,
    /// Size of the block in bytes, as WGSL lays it out.
    pub size: u32,
}

/// What naga says about a kernel's entry point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reflection {
    /// The entry point's name.
    pub entry: String,
    /// `@workgroup_size(x, y, z)`.
    pub workgroup_size: [u32; 3],
    /// Storage buffers, sorted by binding: the kernel's argument list.
    pub storage: Vec<StorageBinding>,
    /// The params uniform, if the entry point uses one.
    pub uniform: Option<UniformBinding>,
    /// Whether the entry point takes `@builtin(num_workgroups)` (as an
    /// argument or a member of one). Above 65,535 workgroups pel folds the
    /// launch into a 2-D grid, which a shader can only unfold knowing the
    /// grid's width; pel refuses to fold a launch of a shader that cannot.
    pub unfolds_grid: bool,
    /// Bytes of workgroup (`var<workgroup>`) memory the entry point uses:
    /// a device with less cannot run it, and pel does not ask it to.
    pub workgroup_memory: u64,
    /// Whether pel appended its WGSL prelude (`pel_index`,
    /// `pel_workgroup_index`) because the shader calls it; see
    /// [`Kernel`](crate::Kernel).
    pub prelude: bool,
}

impl Reflection {
    /// Parses, validates and reflects a WGSL compute shader as a kernel
    /// named `kernel` with this entry point would, without building one:
    /// an invalid shader is [`Error::InvalidShader`](crate::Error) with its
    /// line and column. (`pel validate` prints this.)
    pub fn of(kernel: &str, source: &str, entry: &str) -> Result<Reflection> {
        reflect(kernel, source, entry).map(|(r, _)| r)
    }

    /// Invocations in one workgroup.
    pub fn workgroup_invocations(&self) -> u64 {
        self.workgroup_size.iter().map(|&d| d as u64).product()
    }

    /// `Ok` if a call of kernel `kernel` passes `got` storage buffers;
    /// else [`Error::ArgCount`].
    pub(crate) fn check_arg_count(&self, kernel: &str, got: usize) -> Result<()> {
        if got == self.storage.len() {
            return Ok(());
        }
        Err(Error::ArgCount {
            kernel: kernel.to_owned(),
            what: "the call",
            expected: self.storage.len(),
            got,
        })
    }

    /// `Ok` if a call's argument `index` (in range) holds `elem`s, as its
    /// binding declares; else [`Error::ArgType`].
    pub(crate) fn check_arg_elem(&self, kernel: &str, index: usize, elem: ElemType) -> Result<()> {
        let binding = &self.storage[index];
        if elem == binding.elem {
            return Ok(());
        }
        Err(Error::ArgType {
            kernel: kernel.to_owned(),
            index,
            name: binding.name.clone(),
            what: "the call",
            expected: binding.elem.to_string(),
            got: elem.to_string(),
        })
    }
}

/// Appends the prelude where `source` calls it, then parses, validates and
/// reflects the result for `entry`; the reflection and the WGSL to compile.
pub(crate) fn reflect(kernel: &str, source: &str, entry: &str) -> Result<(Reflection, String)> {
    let composed = super::prelude::compose(source);
    let prelude = composed.is_some();
    let wgsl = composed.unwrap_or_else(|| source.to_owned());
    let source = wgsl.as_str();
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| invalid_shader(kernel, e.location(source), e.emit_to_string(source)))?;
    let info = Validator::new(ValidationFlags::all(), Capabilities::default())
        .validate(&module)
        .map_err(|e| invalid_shader(kernel, e.location(source), e.emit_to_string(source)))?;

    let (index, ep) = module
        .entry_points
        .iter()
        .enumerate()
        .find(|(_, ep)| ep.stage == ShaderStage::Compute && ep.name == entry)
        .ok_or_else(|| Error::NoEntryPoint {
            kernel: kernel.to_owned(),
            entry: entry.to_owned(),
            available: {
                let names: Vec<_> = module
                    .entry_points
                    .iter()
                    .filter(|ep| ep.stage == ShaderStage::Compute)
                    .map(|ep| ep.name.as_str())
                    .collect();
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            },
        })?;
    let uses = info.get_entry_point(index);
    let unresolved_lengths = has_unresolved_array_length(&module);

    // What `var<workgroup>` globals the entry point uses, directly or
    // through the functions it calls.
    let workgroup_memory: u64 = module
        .global_variables
        .iter()
        .filter(|(h, v)| v.space == AddressSpace::WorkGroup && !uses[*h].is_empty())
        .map(|(_, v)| module.types[v.ty].inner.size(module.to_ctx()) as u64)
        .sum();
    let mut storage = Vec::new();
    let mut uniform: Option<UniformBinding> = None;
    for (handle, var) in module.global_variables.iter() {
        let Some(rb) = var.binding else { continue };
        if uses[handle].is_empty() {
            continue;
        }
        let name = var.name.clone().unwrap_or_default();
        let unsupported = |reason: String| Error::UnsupportedBinding {
            kernel: kernel.to_owned(),
            group: rb.group,
            binding: rb.binding,
            name: name.clone(),
            reason,
        };
        if rb.group != 0 {
            return Err(unsupported(
                "pel binds group 0 only; move every binding to @group(0)".into(),
            ));
        }
        let ty = &module.types[var.ty].inner;
        match var.space {
            AddressSpace::Storage { access } => {
                let TypeInner::Array {
                    base,
                    size: ArraySize::Dynamic,
                    ..
                } = *ty
                else {
                    return Err(unsupported(
                        "a storage binding must be a runtime-sized array, `array<T>`".into(),
                    ));
                };
                let elem = elem_type(&module, base).ok_or_else(|| {
                    unsupported(
                        "element type must be f32, u32, i32, a vec2/vec4 of them, an atomic or a struct"
                            .into(),
                    )
                })?;
                let access = if access.contains(StorageAccess::STORE) {
                    Access::ReadWrite
                } else {
                    Access::Read
                };
                storage.push(StorageBinding {
                    name,
                    group: rb.group,
                    binding: rb.binding,
                    access,
                    elem,
                    // naga marks an `arrayLength` of a global as a QUERY use,
                    // through every function the entry point calls.
                    array_length: uses[handle].contains(GlobalUse::QUERY) || unresolved_lengths,
                });
            }
            AddressSpace::Uniform => {
                if let Some(first) = &uniform {
                    return Err(unsupported(format!(
                        "a kernel takes one uniform params block, and `{}` at @binding({}) is already one",
                        first.name, first.binding
                    )));
                }
                uniform = Some(UniformBinding {
                    name,
                    binding: rb.binding,
                    size: ty.size(module.to_ctx()),
                });
            }
            _ => {
                return Err(unsupported(
                    "pel binds storage arrays and one uniform block; textures and samplers are not supported"
                        .into(),
                ));
            }
        }
    }
    storage.sort_by_key(|b| b.binding);

    let reflection = Reflection {
        entry: entry.to_owned(),
        workgroup_size: ep.workgroup_size,
        storage,
        uniform,
        unfolds_grid: takes_num_workgroups(&module, ep),
        workgroup_memory,
        prelude,
    };
    Ok((reflection, wgsl))
}

/// Whether the entry point takes `@builtin(num_workgroups)`, directly or as
/// a member of a struct argument.
fn takes_num_workgroups(module: &naga::Module, ep: &naga::EntryPoint) -> bool {
    let is_it = |b: &Option<Binding>| matches!(b, Some(Binding::BuiltIn(BuiltIn::NumWorkGroups)));
    ep.function.arguments.iter().any(|arg| {
        is_it(&arg.binding)
            || match &module.types[arg.ty].inner {
                TypeInner::Struct { members, .. } => members.iter().any(|m| is_it(&m.binding)),
                _ => false,
            }
    })
}

/// Whether some `arrayLength` in the module is of something other than a
/// global, such as a pointer passed as a function argument: naga cannot say
/// which binding that measures, so every binding counts as measured.
fn has_unresolved_array_length(module: &naga::Module) -> bool {
    let functions = module
        .functions
        .iter()
        .map(|(_, f)| f)
        .chain(module.entry_points.iter().map(|ep| &ep.function));
    for f in functions {
        for (_, expr) in f.expressions.iter() {
            let Expression::ArrayLength(mut of) = *expr else {
                continue;
            };
            loop {
                match f.expressions[of] {
                    Expression::GlobalVariable(_) => break,
                    Expression::AccessIndex { base, .. } | Expression::Access { base, .. } => {
                        of = base
                    }
                    _ => return true,
                }
            }
        }
    }
    false
}

fn invalid_shader(kernel: &str, at: Option<naga::SourceLocation>, message: String) -> Error {
    let (line, column) = at.map_or((0, 0), |l| (l.line_number, l.line_position));
    Error::InvalidShader {
        kernel: kernel.to_owned(),
        line,
        column,
        message: message.trim().to_owned(),
    }
}

fn elem_type(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Option<ElemType> {
    let scalar = |s: naga::Scalar| match (s.kind, s.width) {
        (ScalarKind::Float, 4) => Some(Scalar::F32),
        (ScalarKind::Uint, 4) => Some(Scalar::U32),
        (ScalarKind::Sint, 4) => Some(Scalar::I32),
        _ => None,
    };
    match module.types[ty].inner {
        TypeInner::Scalar(s) | TypeInner::Atomic(s) => Some(ElemType::scalar(scalar(s)?)),
        TypeInner::Vector { size, scalar: s } => {
            let lanes = match size {
                naga::VectorSize::Bi => 2,
                naga::VectorSize::Quad => 4,
                // vec3 has a 16-byte stride in arrays; no Rust array matches it.
                naga::VectorSize::Tri => return None,
            };
            Some(ElemType::Vector {
                scalar: scalar(s)?,
                lanes,
            })
        }
        TypeInner::Struct { span, .. } => Some(ElemType::Struct { size: span }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Reflection;
    use crate::Error;

    const BINDINGS: &str = "
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
";

    fn of(body: &str) -> Reflection {
        Reflection::of("flags", &format!("{BINDINGS}{body}"), "main")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn unfolds_grid_when_the_entry_point_takes_num_workgroups() {
        let plain = of("@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) { c[id.x] = a[id.x] + b[id.x]; }");
        assert!(!plain.unfolds_grid && !plain.prelude);

        let direct = of("@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) g: vec3<u32>) {
    let i = id.x + id.y * g.x * 64u;
    c[i] = a[i] + b[i];
}");
        assert!(direct.unfolds_grid && !direct.prelude);

        let member = of("struct In {
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
}
@compute @workgroup_size(64)
fn main(input: In) { let i = pel_index(input.id, input.groups); c[i] = a[i] + b[i]; }");
        assert!(member.unfolds_grid && member.prelude);
    }

    #[test]
    fn array_length_marks_the_bindings_measured_through_called_functions() {
        let r = of("fn size_of_b() -> u32 { return arrayLength(&b); }
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) g: vec3<u32>) {
    let i = pel_index(id, g);
    if i < size_of_b() { c[i] = a[i] + b[i]; }
}");
        let measured: Vec<(&str, bool)> = r
            .storage
            .iter()
            .map(|s| (s.name.as_str(), s.array_length))
            .collect();
        assert_eq!(measured, [("a", false), ("b", true), ("c", false)]);
        assert_eq!(r.workgroup_size, [8, 8, 1]);
    }

    #[test]
    fn the_prelude_keeps_the_users_line_numbers() {
        // Line 7 (after BINDINGS' 4 lines and 2 of the entry point) assigns
        // a u32 to an f32; the prelude comes after it and must not move it.
        let err = Reflection::of(
            "lines",
            &format!(
                "{BINDINGS}@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) g: vec3<u32>) {{
    let i: f32 = pel_index(id, g);
}}"
            ),
            "main",
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidShader { line: 7, .. }), "{err}");
    }
}
