//! Image labels: the ones an image should carry, derived from what its files say, and the
//! comparison of the ones it carries with them. One mapping serves `containerspec labels`
//! (which prints the derived labels, or checks the carried ones) and the `label-mismatch`
//! rule of every verdict, so that a label printed here never contradicts the files there.
//!
//! The vocabulary (docs/labels.md documents each label): the seed's
//! `org.supercontainers.{mpi,gpu,glibc}`, refined by the keys the HPC container
//! compatibility drafts use (`mpi.implementation`, `mpi.version` as in compspec,
//! `glibc.version` and `libc.provider` as in the container-hpc-conformance draft, read as
//! aliases), and archspec's `io.archspec.cpu.target`.
//!
//! Pure: everything comes from an [`Inventory`]. A label the files cannot tell is not
//! derived; the reason says why, and no value is ever guessed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::inventory::cpu::{
    X86_BASELINE, archspec_features, archspec_name_for_gcc, is_intrinsic_only, normalize_target,
};
use crate::inventory::model::{Inventory, LibcFamily, MpiAbi, MpiInstall, TargetStatus};
use crate::inventory::version::Version;

/// The MPI ABI family: `mpich`, `openmpi` or `mpi-abi` (the MPI-5 standard ABI).
pub const MPI: &str = "org.supercontainers.mpi";
/// The MPI implementation: `MPICH`, `Open MPI`, `Intel MPI`, `MVAPICH2`, `Cray MPICH`.
pub const MPI_IMPLEMENTATION: &str = "org.supercontainers.mpi.implementation";
/// The MPI implementation's release, as its library states it.
pub const MPI_VERSION: &str = "org.supercontainers.mpi.version";
/// The C library: `glibc` or `musl`.
pub const LIBC: &str = "org.supercontainers.libc";
/// The glibc release the image ships.
pub const GLIBC: &str = "org.supercontainers.glibc";
/// The highest `GLIBC_2.N` version the image's examined objects need.
pub const GLIBC_REQUIRED: &str = "org.supercontainers.glibc.required";
/// The GPU runtimes the image ships: `cuda`, `rocm` (comma-separated when both).
pub const GPU: &str = "org.supercontainers.gpu";
/// The CUDA runtime's version.
pub const CUDA_VERSION: &str = "org.supercontainers.gpu.cuda.version";
/// The ROCm release.
pub const ROCM_VERSION: &str = "org.supercontainers.gpu.rocm.version";
/// The CPU target the image's files require, as an archspec name.
pub const CPU_TARGET: &str = "io.archspec.cpu.target";

/// Every label derived, in the order they are printed.
pub const VOCABULARY: &[&str] = &[
    MPI,
    MPI_IMPLEMENTATION,
    MPI_VERSION,
    LIBC,
    GLIBC,
    GLIBC_REQUIRED,
    GPU,
    CUDA_VERSION,
    ROCM_VERSION,
    CPU_TARGET,
];

/// Other spellings of the same labels, checked like them: the container-hpc-conformance
/// draft's (`mpi.provider`, `glibc.version`, `libc.provider`) and the CPU target key
/// containerspec has always read.
pub const ALIASES: &[(&str, &str)] = &[
    ("org.supercontainers.mpi.provider", MPI),
    ("org.supercontainers.glibc.version", GLIBC),
    ("org.supercontainers.libc.provider", LIBC),
    ("org.supercontainers.cpu.target", CPU_TARGET),
];

/// The label a key names: itself when it is in the vocabulary, the label it is an alias
/// of, or None for any other key.
#[must_use]
pub fn canonical(key: &str) -> Option<&'static str> {
    VOCABULARY
        .iter()
        .find(|k| **k == key)
        .copied()
        .or_else(|| ALIASES.iter().find(|(a, _)| *a == key).map(|(_, k)| *k))
}

/// One label the files give a value for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Derived {
    pub key: String,
    pub value: String,
    /// The files (or the variable) the value comes from.
    pub from: Vec<String>,
    /// What a reader should know about the value (a lower bound, what was examined).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A label the files cannot give a value for, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Unknown {
    pub key: String,
    pub reason: String,
}

/// Every label of the vocabulary, derived or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Derivation {
    pub derived: Vec<Derived>,
    pub unknown: Vec<Unknown>,
}

impl Derivation {
    /// The derived labels as key -> value.
    #[must_use]
    pub fn values(&self) -> BTreeMap<String, String> {
        self.derived
            .iter()
            .map(|d| (d.key.clone(), d.value.clone()))
            .collect()
    }

    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Derived> {
        self.derived.iter().find(|d| d.key == key)
    }

    fn push(&mut self, key: &str, found: Result<Found, String>) {
        match found {
            Ok(f) => self.derived.push(Derived {
                key: key.to_string(),
                value: f.value,
                from: f.from,
                note: f.note,
            }),
            Err(reason) => self.unknown.push(Unknown {
                key: key.to_string(),
                reason,
            }),
        }
    }
}

struct Found {
    value: String,
    from: Vec<String>,
    note: Option<String>,
}

impl Found {
    fn new(value: impl Into<String>, from: Vec<String>) -> Found {
        Found {
            value: value.into(),
            from,
            note: None,
        }
    }
}

/// The labels `inv`'s files give values for, and why the others cannot be given.
#[must_use]
pub fn derive(inv: &Inventory) -> Derivation {
    let mut out = Derivation::default();
    out.push(MPI, mpi_family(inv));
    out.push(MPI_IMPLEMENTATION, mpi_implementation(inv));
    out.push(MPI_VERSION, mpi_version(inv));
    out.push(LIBC, libc_family(inv));
    out.push(GLIBC, glibc_shipped(inv));
    out.push(GLIBC_REQUIRED, glibc_required(inv));
    out.push(GPU, gpu(inv));
    out.push(CUDA_VERSION, cuda_version(inv));
    out.push(ROCM_VERSION, rocm_version(inv));
    out.push(CPU_TARGET, cpu_target(inv));
    out
}

/// The label value of an ABI family.
#[must_use]
pub fn abi_label(abi: MpiAbi) -> &'static str {
    match abi {
        MpiAbi::Mpich => "mpich",
        MpiAbi::OpenMpi => "openmpi",
        MpiAbi::Standard => "mpi-abi",
    }
}

const NO_MPI: &str = "no MPI library is in the loader's view or the entrypoint's closure \
                      (libmpi.so.*, libmpich.so.*, libmpi_abi.so.*)";

fn mpi_from(inv: &Inventory) -> Vec<String> {
    let mut from: Vec<String> = inv.mpi.iter().map(|m| m.real_path.clone()).collect();
    from.dedup();
    from
}

/// Distinct values in the order first seen.
fn distinct<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn mpi_family(inv: &Inventory) -> Result<Found, String> {
    if inv.mpi.is_empty() {
        return Err(NO_MPI.into());
    }
    let mut families: Vec<&str> = inv.mpi.iter().map(|m| abi_label(m.abi)).collect();
    families.sort_unstable();
    families.dedup();
    Ok(Found::new(families.join(","), mpi_from(inv)))
}

fn mpi_implementation(inv: &Inventory) -> Result<Found, String> {
    if inv.mpi.is_empty() {
        return Err(NO_MPI.into());
    }
    let names = distinct(inv.mpi.iter().map(|m| m.implementation.as_str()));
    if names.contains(&"MPI ABI") {
        return Err(
            "the standard-ABI library shows no sign of the implementation that built it".into(),
        );
    }
    Ok(Found::new(names.join(","), mpi_from(inv)))
}

/// The release an installation's library states (a version symbol or its version block),
/// not the numbers of its file name (an ABI version).
fn release(m: &MpiInstall) -> Option<&str> {
    m.version.as_deref().filter(|_| {
        m.version_source
            .as_deref()
            .is_some_and(|s| s != "file-name")
    })
}

fn mpi_version(inv: &Inventory) -> Result<Found, String> {
    if inv.mpi.is_empty() {
        return Err(NO_MPI.into());
    }
    if let Some(m) = inv.mpi.iter().find(|m| release(m).is_none()) {
        return Err(match (&m.version, m.version_source.as_deref()) {
            (Some(v), Some("file-name")) => format!(
                "{} states no release; {v} is its file name's numbers (an ABI version)",
                m.real_path
            ),
            _ => format!("{} states no release", m.real_path),
        });
    }
    let versions = distinct(inv.mpi.iter().filter_map(release));
    if versions.len() > 1 {
        let each: Vec<String> = inv
            .mpi
            .iter()
            .map(|m| {
                format!(
                    "{} {} ({})",
                    m.implementation,
                    release(m).unwrap_or("?"),
                    m.soname
                )
            })
            .collect();
        return Err(format!(
            "the MPI installations differ in version: {}",
            each.join(", ")
        ));
    }
    let version = versions
        .first()
        .copied()
        .ok_or_else(|| NO_MPI.to_string())?;
    Ok(Found::new(version, mpi_from(inv)))
}

fn libc_family(inv: &Inventory) -> Result<Found, String> {
    let libc = inv
        .libc
        .as_ref()
        .ok_or("no libc found (no glibc loader and libc.so.6, no musl loader)")?;
    let family = match libc.family {
        LibcFamily::Glibc => "glibc",
        LibcFamily::Musl => "musl",
    };
    Ok(Found::new(family, vec![libc.path.clone()]))
}

fn glibc_shipped(inv: &Inventory) -> Result<Found, String> {
    let libc = inv.libc.as_ref().ok_or("no glibc found")?;
    if libc.family != LibcFamily::Glibc {
        return Err(format!(
            "the libc is musl{}, not glibc",
            libc.version
                .as_deref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default()
        ));
    }
    match (&libc.version, libc.version_source.as_deref()) {
        (Some(_), Some("symbol-versions")) => Err(format!(
            "{} has no release string; its version nodes (up to {}) give only a lower bound",
            libc.path,
            libc.max_symbol_version.as_deref().unwrap_or("?")
        )),
        (Some(v), _) => Ok(Found::new(v.clone(), vec![libc.path.clone()])),
        (None, _) => Err(format!("{} states no version", libc.path)),
    }
}

fn scan_note(inv: &Inventory) -> Option<String> {
    (inv.scan.mode != "all").then(|| {
        "default scan: the entrypoint and its libraries, the libc and loader, the MPI and GPU \
         libraries (--all examines every ELF file)"
            .to_string()
    })
}

fn glibc_required(inv: &Inventory) -> Result<Found, String> {
    if inv
        .libc
        .as_ref()
        .is_some_and(|l| l.family == LibcFamily::Musl)
    {
        return Err("the libc is musl: no object needs a GLIBC_ version".into());
    }
    match &inv.glibc_required {
        Some(r) => Ok(Found {
            value: r.version.clone(),
            from: r.needed_by.clone(),
            note: scan_note(inv),
        }),
        None => Err(format!(
            "no examined object needs a GLIBC_ version ({} ELF files examined{})",
            inv.scan.elf_files,
            if inv.scan.mode == "all" {
                ""
            } else {
                "; --all examines every ELF file"
            }
        )),
    }
}

fn cuda_present(inv: &Inventory) -> bool {
    inv.gpu.cuda_runtime.is_some() || !inv.gpu.cuda_runtimes.is_empty()
}

fn cuda_from(inv: &Inventory) -> Vec<String> {
    let mut from: Vec<String> = inv
        .gpu
        .cuda_runtime
        .iter()
        .map(|r| r.source.clone())
        .chain(
            inv.gpu
                .cuda_runtimes
                .iter()
                .map(|r| r.library.clone().unwrap_or_else(|| r.source.clone())),
        )
        .collect();
    from.sort();
    from.dedup();
    from
}

fn gpu(inv: &Inventory) -> Result<Found, String> {
    let mut kinds = Vec::new();
    let mut from = Vec::new();
    if cuda_present(inv) {
        kinds.push("cuda");
        from.extend(cuda_from(inv));
    }
    if let Some(r) = &inv.gpu.rocm {
        kinds.push("rocm");
        from.push(r.source.clone());
    }
    if kinds.is_empty() {
        return Err(
            "no CUDA runtime (libcudart, a toolkit tree, pip or conda packages) and no \
                    ROCm (libamdhip64, /opt/rocm) found"
                .into(),
        );
    }
    Ok(Found::new(kinds.join(","), from))
}

fn cuda_version(inv: &Inventory) -> Result<Found, String> {
    if let Some(r) = &inv.gpu.cuda_runtime {
        let mut found = Found::new(r.version.clone(), vec![r.source.clone()]);
        if inv.gpu.cuda_runtimes.len() > 1 {
            found.note = Some(format!(
                "the highest of {} CUDA runtimes the image ships",
                inv.gpu.cuda_runtimes.len()
            ));
        }
        return Ok(found);
    }
    if !cuda_present(inv) {
        return Err("no CUDA runtime found".into());
    }
    let majors: Vec<String> = inv
        .gpu
        .cuda_runtimes
        .iter()
        .filter_map(|r| r.major.map(|m| m.to_string()))
        .collect();
    Err(format!(
        "no file states the CUDA runtime's version{} ({})",
        if majors.is_empty() {
            String::new()
        } else {
            format!(", only its major version {}", majors.join(", "))
        },
        cuda_from(inv).join(", ")
    ))
}

fn rocm_version(inv: &Inventory) -> Result<Found, String> {
    let r = inv.gpu.rocm.as_ref().ok_or("no ROCm found")?;
    Ok(Found::new(r.version.clone(), vec![r.source.clone()]))
}

/// What the files alone record about the CPU the image needs.
struct FilesCpu<'a> {
    arch: &'a str,
    features: BTreeSet<String>,
    /// The objects (and their recorded targets) that set the requirement.
    from: Vec<String>,
}

/// The files' CPU requirement; Err with the reason when they record none, or when the
/// inventory's requirement includes a declared label (which cannot confirm itself).
fn files_cpu(inv: &Inventory) -> Result<FilesCpu<'_>, String> {
    let m = &inv.microarch;
    if m.signals.iter().any(|s| s.kind == "label") {
        return Err(
            "the requirement includes the image's own label, so its files alone \
                    cannot be told apart (containerspec labels reads them without it)"
                .into(),
        );
    }
    let arch = inv
        .arch
        .as_deref()
        .ok_or("the files do not say the architecture")?;
    if m.status == TargetStatus::Unknown {
        let some: Vec<&str> = m.unmarked.iter().take(3).map(String::as_str).collect();
        return Err(if some.is_empty() {
            "no examined file records its target (no ISA-level note, no recorded -march, no \
             GOAMD64)"
                .to_string()
        } else {
            format!(
                "no examined file records its target ({}{} {} no ISA-level note, -march or \
                 GOAMD64)",
                some.join(", "),
                more(m.unmarked.len(), some.len()),
                verb(m.unmarked.len())
            )
        });
    }
    let mut features: BTreeSet<String> = m.features.iter().cloned().collect();
    if arch == "x86_64" {
        features.extend(X86_BASELINE.iter().map(|f| f.to_string()));
    }
    let mut from: Vec<String> = m
        .signals
        .iter()
        .map(|s| format!("{} ({} {})", s.source, s.kind, s.target))
        .collect();
    from.dedup();
    Ok(FilesCpu {
        arch,
        features,
        from,
    })
}

fn verb(n: usize) -> &'static str {
    if n == 1 { "records" } else { "record" }
}

fn more(all: usize, shown: usize) -> String {
    if all > shown {
        format!(" and {} more", all - shown)
    } else {
        String::new()
    }
}

/// An archspec target's code-generation features, the x86 baseline included.
fn target_features(arch: &str, name: &str) -> Option<BTreeSet<String>> {
    let mut f = archspec_features(name)?;
    if arch == "x86_64" {
        f.extend(X86_BASELINE.iter().map(|f| f.to_string()));
    }
    Some(f)
}

/// `wanted` asks for what `files` need, and beyond it only for extensions compilers emit
/// just for their intrinsics (archspec's haswell names AES, gcc's `-march=haswell` does
/// not enable it): what a label may add without changing what the verdict refuses.
fn covers_exactly(wanted: &BTreeSet<String>, files: &BTreeSet<String>) -> bool {
    files.is_subset(wanted) && wanted.difference(files).all(|f| is_intrinsic_only(f))
}

/// The archspec name of the files' requirement: the architecture itself for its
/// baseline, the generic x86-64 level when the features are that level's, else the name
/// of a recorded target whose features are the requirement (plus, at most, extensions
/// only intrinsics use). Never a name that asks for less, or for more code generation,
/// than the files do: such a label would change the verdict.
fn cpu_target(inv: &Inventory) -> Result<Found, String> {
    let files = files_cpu(inv)?;
    let m = &inv.microarch;
    let mut candidates: Vec<String> = Vec::new();
    if let Some(name) = normalize_target(files.arch) {
        candidates.push(name);
    }
    if files.arch == "x86_64" {
        if let Some(level) = m.level.filter(|l| *l >= 2) {
            candidates.push(format!("x86_64_v{level}"));
        }
    }
    for s in &m.signals {
        let bare = s.target.split('+').next().unwrap_or_default().trim();
        if let Some(name) = normalize_target(bare).or_else(|| archspec_name_for_gcc(bare)) {
            candidates.push(name);
        }
    }
    let named: Vec<(String, BTreeSet<String>)> = candidates
        .into_iter()
        .filter_map(|c| {
            let f = target_features(files.arch, &c)?;
            Some((c, f))
        })
        .collect();
    let exact = named.iter().find(|(_, f)| *f == files.features);
    let close = || {
        named
            .iter()
            .find(|(_, f)| covers_exactly(f, &files.features))
    };
    let Some((name, features)) = exact.or_else(close) else {
        return Err(format!(
            "the files require {} ({}), which no archspec target names exactly; declare the \
             target the image is built for",
            m.required.as_deref().unwrap_or("their targets"),
            files.features.iter().cloned().collect::<Vec<_>>().join(" ")
        ));
    };
    let extra: Vec<&str> = features
        .difference(&files.features)
        .map(String::as_str)
        .collect();
    let mut notes = Vec::new();
    if !extra.is_empty() {
        notes.push(format!(
            "{name} also names {}, which compilers emit only for their intrinsics",
            extra.join(", ")
        ));
    }
    if m.status == TargetStatus::Partial {
        let some: Vec<&str> = m.unmarked.iter().take(3).map(String::as_str).collect();
        notes.push(format!(
            "a lower bound: {}{} {} no target",
            some.join(", "),
            more(m.unmarked.len(), some.len()),
            verb(m.unmarked.len())
        ));
    }
    let from = if files.from.is_empty() {
        vec!["every examined object records the baseline".to_string()]
    } else {
        files.from
    };
    Ok(Found {
        value: name.clone(),
        from,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// How a carried label compares with the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The files say the same.
    Agrees,
    /// The files say otherwise: a `label-mismatch`.
    Contradicts,
    /// The files cannot confirm it, nor contradict it.
    Unverified,
    /// Not carried; the files give it a value.
    Missing,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Agrees => "agrees",
            Outcome::Contradicts => "contradicts",
            Outcome::Unverified => "unverified",
            Outcome::Missing => "missing",
        }
    }
}

/// One label compared with the files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LabelCheck {
    /// The key as carried (an alias stays an alias), or the derived key when missing.
    pub key: String,
    /// The vocabulary's key it stands for.
    pub label: String,
    /// The carried value; null when missing.
    pub declared: Option<String>,
    pub outcome: Outcome,
    /// What the files say (`mpich`, `glibc 2.36`, `no MPI`), or why they cannot say it.
    pub files_say: String,
    /// The files that say it.
    pub from: Vec<String>,
}

/// Compares every carried label of the vocabulary (or an alias) with the files; other
/// keys are left alone. Reads only what each carried label needs, so a verdict of an image
/// that carries none pays nothing.
#[must_use]
pub fn check(carried: &BTreeMap<String, String>, inv: &Inventory) -> Vec<LabelCheck> {
    let mut out = Vec::new();
    for (key, declared) in carried {
        let Some(label) = canonical(key) else {
            continue;
        };
        let (outcome, files_say, from) = compare(label, declared.trim(), inv);
        out.push(LabelCheck {
            key: key.clone(),
            label: label.to_string(),
            declared: Some(declared.clone()),
            outcome,
            files_say,
            from,
        });
    }
    out
}

/// The derived labels that `carried` does not carry under their key or an alias.
#[must_use]
pub fn missing(carried: &BTreeMap<String, String>, derivation: &Derivation) -> Vec<LabelCheck> {
    let carried: BTreeSet<&str> = carried.keys().filter_map(|k| canonical(k)).collect();
    derivation
        .derived
        .iter()
        .filter(|d| !carried.contains(d.key.as_str()))
        .map(|d| LabelCheck {
            key: d.key.clone(),
            label: d.key.clone(),
            declared: None,
            outcome: Outcome::Missing,
            files_say: d.value.clone(),
            from: d.from.clone(),
        })
        .collect()
}

type Compared = (Outcome, String, Vec<String>);

fn agrees(says: impl Into<String>, from: Vec<String>) -> Compared {
    (Outcome::Agrees, says.into(), from)
}

fn contradicts(says: impl Into<String>, from: Vec<String>) -> Compared {
    (Outcome::Contradicts, says.into(), from)
}

fn unverified(says: impl Into<String>, from: Vec<String>) -> Compared {
    (Outcome::Unverified, says.into(), from)
}

/// Lowercase letters and digits only: `Open MPI`, `open-mpi` and `OpenMPI` are one name.
fn squash(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A comma-separated label value's items.
fn items(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `declared` names the release `actual`: the same numbers, or fewer (`4.0` names
/// `4.0.2`), or more that are zero (`2.36.0` names `2.36`).
fn same_release(declared: &str, actual: &str) -> bool {
    let d = declared.trim_start_matches(['v', 'V']);
    match (Version::parse(d), Version::parse(actual)) {
        (Some(d), Some(a)) => {
            let n = d.0.len().min(a.0.len());
            d.0[..n] == a.0[..n] && d.0[n..].iter().all(|x| *x == 0)
        }
        _ => d == actual,
    }
}

/// The first two numbers of a version (`12.4.127` -> `12.4`), or the one there is.
fn major_minor(v: &str) -> Option<Vec<u32>> {
    let v = Version::parse(v.trim().trim_start_matches(['v', 'V']))?;
    Some(v.0.into_iter().take(2).collect())
}

/// Same major.minor (a declared major alone compares the major).
fn same_minor(declared: &str, actual: &str) -> bool {
    match (major_minor(declared), major_minor(actual)) {
        (Some(d), Some(a)) => {
            let n = d.len().min(a.len());
            d[..n] == a[..n]
        }
        _ => false,
    }
}

fn compare(label: &str, declared: &str, inv: &Inventory) -> Compared {
    match label {
        MPI => compare_mpi(declared, inv),
        MPI_IMPLEMENTATION => compare_implementation(declared, inv),
        MPI_VERSION => compare_mpi_version(declared, inv),
        LIBC => compare_libc(declared, inv),
        GLIBC => compare_glibc(declared, inv),
        GLIBC_REQUIRED => compare_glibc_required(declared, inv),
        GPU => compare_gpu(declared, inv),
        CUDA_VERSION => compare_cuda_version(declared, inv),
        ROCM_VERSION => compare_rocm_version(declared, inv),
        _ => compare_cpu(declared, inv),
    }
}

fn no_mpi() -> Compared {
    contradicts("no MPI", Vec::new())
}

fn compare_mpi(declared: &str, inv: &Inventory) -> Compared {
    let found: BTreeSet<&str> = inv.mpi.iter().map(|m| abi_label(m.abi)).collect();
    if found.is_empty() {
        return no_mpi();
    }
    let says = found.iter().copied().collect::<Vec<_>>().join(", ");
    let known: BTreeSet<String> = found.iter().map(|f| squash(f)).collect();
    let wanted = items(declared);
    let all = !wanted.is_empty()
        && wanted.iter().all(|w| {
            let w = squash(w);
            let w = if w == "standard" { "mpiabi".into() } else { w };
            known.contains(&w)
        });
    if all {
        agrees(says, mpi_from(inv))
    } else {
        contradicts(says, mpi_from(inv))
    }
}

fn compare_implementation(declared: &str, inv: &Inventory) -> Compared {
    if inv.mpi.is_empty() {
        return no_mpi();
    }
    let names = distinct(inv.mpi.iter().map(|m| m.implementation.as_str()));
    let says = names.join(", ");
    let known: BTreeSet<String> = names.iter().map(|n| squash(n)).collect();
    let wanted = items(declared);
    if !wanted.is_empty() && wanted.iter().all(|w| known.contains(&squash(w))) {
        agrees(says, mpi_from(inv))
    } else if names.contains(&"MPI ABI") {
        unverified(
            "a standard-ABI library that shows no implementation",
            mpi_from(inv),
        )
    } else {
        contradicts(says, mpi_from(inv))
    }
}

fn compare_mpi_version(declared: &str, inv: &Inventory) -> Compared {
    if inv.mpi.is_empty() {
        return no_mpi();
    }
    let stated: Vec<String> = inv
        .mpi
        .iter()
        .filter_map(|m| release(m).map(|v| format!("{} {v}", m.implementation)))
        .collect();
    if inv
        .mpi
        .iter()
        .filter_map(release)
        .any(|v| same_release(declared, v))
    {
        return agrees(stated.join(", "), mpi_from(inv));
    }
    if inv.mpi.iter().all(|m| release(m).is_some()) {
        return contradicts(stated.join(", "), mpi_from(inv));
    }
    match mpi_version(inv) {
        Err(reason) => unverified(reason, mpi_from(inv)),
        Ok(_) => unverified("no release stated", mpi_from(inv)),
    }
}

fn compare_libc(declared: &str, inv: &Inventory) -> Compared {
    match libc_family(inv) {
        Err(_) => contradicts("no libc", Vec::new()),
        Ok(f) if squash(declared) == f.value => agrees(f.value, f.from),
        Ok(f) => contradicts(f.value, f.from),
    }
}

fn compare_glibc(declared: &str, inv: &Inventory) -> Compared {
    let Some(libc) = inv.libc.as_ref().filter(|l| l.family == LibcFamily::Glibc) else {
        return contradicts("no glibc", Vec::new());
    };
    let from = vec![libc.path.clone()];
    let Some(actual) = libc.version.as_deref() else {
        return unverified(format!("{} states no version", libc.path), from);
    };
    if libc.version_source.as_deref() == Some("symbol-versions") {
        // A lower bound: a label below it is wrong, one at or above it may be right.
        return match (Version::parse(declared), Version::parse(actual)) {
            (Some(d), Some(a)) if d < a => contradicts(format!("glibc {actual} or later"), from),
            _ => unverified(
                format!("glibc {actual} or later (no release string, only its version nodes)"),
                from,
            ),
        };
    }
    if declared == actual || declared.starts_with(&format!("{actual}.")) {
        agrees(format!("glibc {actual}"), from)
    } else {
        contradicts(format!("glibc {actual}"), from)
    }
}

fn compare_glibc_required(declared: &str, inv: &Inventory) -> Compared {
    let d = declared.strip_prefix("GLIBC_").unwrap_or(declared);
    let Some(d) = Version::parse(d) else {
        return unverified("not a glibc version", Vec::new());
    };
    let all = inv.scan.mode == "all";
    let Some(r) = &inv.glibc_required else {
        return unverified("no examined object needs a GLIBC_ version", Vec::new());
    };
    let from = r.needed_by.clone();
    let Some(a) = Version::parse(&r.version) else {
        return unverified(format!("GLIBC_{}", r.version), from);
    };
    let says = format!("GLIBC_{}", r.version);
    match d.cmp(&a) {
        std::cmp::Ordering::Equal => agrees(says, from),
        std::cmp::Ordering::Less => contradicts(says, from),
        std::cmp::Ordering::Greater if all => contradicts(says, from),
        std::cmp::Ordering::Greater => unverified(
            format!(
                "{says} for the examined objects; others may need more (--all examines every ELF file)"
            ),
            from,
        ),
    }
}

fn compare_gpu(declared: &str, inv: &Inventory) -> Compared {
    let mut absent = Vec::new();
    let mut unknown = Vec::new();
    let mut from = Vec::new();
    for item in items(declared) {
        match item.to_ascii_lowercase().as_str() {
            "cuda" if cuda_present(inv) => from.extend(cuda_from(inv)),
            "rocm" => match &inv.gpu.rocm {
                Some(r) => from.push(r.source.clone()),
                None => absent.push(item),
            },
            "cuda" => absent.push(item),
            _ => unknown.push(item),
        }
    }
    if !absent.is_empty() {
        let says: Vec<String> = absent.iter().map(|a| format!("no {a} runtime")).collect();
        return contradicts(says.join(", "), from);
    }
    if !unknown.is_empty() || items(declared).is_empty() {
        return unverified(
            format!(
                "the files are not read for {}",
                if unknown.is_empty() {
                    "an empty value".to_string()
                } else {
                    unknown.join(", ")
                }
            ),
            from,
        );
    }
    let says = gpu(inv).map(|f| f.value).unwrap_or_default();
    agrees(says, from)
}

fn compare_cuda_version(declared: &str, inv: &Inventory) -> Compared {
    if !cuda_present(inv) {
        return contradicts("no cuda runtime", Vec::new());
    }
    let runtimes: Vec<(String, String)> = inv
        .gpu
        .cuda_runtimes
        .iter()
        .filter_map(|r| Some((r.version.clone()?, r.source.clone())))
        .chain(
            inv.gpu
                .cuda_runtime
                .iter()
                .map(|r| (r.version.clone(), r.source.clone())),
        )
        .collect();
    if let Some((v, source)) = runtimes.iter().find(|(v, _)| same_minor(declared, v)) {
        return agrees(format!("CUDA {v}"), vec![source.clone()]);
    }
    if !runtimes.is_empty() {
        let mut says: Vec<String> = runtimes.iter().map(|(v, _)| format!("CUDA {v}")).collect();
        says.sort();
        says.dedup();
        let from = runtimes.into_iter().map(|(_, s)| s).collect();
        return contradicts(says.join(", "), from);
    }
    let majors: Vec<u32> = inv
        .gpu
        .cuda_runtimes
        .iter()
        .filter_map(|r| r.major)
        .collect();
    let declared_major = major_minor(declared).and_then(|v| v.first().copied());
    match declared_major {
        Some(d) if !majors.is_empty() && !majors.contains(&d) => {
            let says: Vec<String> = majors.iter().map(|m| format!("CUDA {m}")).collect();
            contradicts(says.join(", "), cuda_from(inv))
        }
        _ => unverified("no file states the CUDA runtime's version", cuda_from(inv)),
    }
}

fn compare_rocm_version(declared: &str, inv: &Inventory) -> Compared {
    let Some(r) = &inv.gpu.rocm else {
        return contradicts("no rocm runtime", Vec::new());
    };
    let from = vec![r.source.clone()];
    if same_minor(declared, &r.version) {
        agrees(format!("ROCm {}", r.version), from)
    } else {
        contradicts(format!("ROCm {}", r.version), from)
    }
}

fn compare_cpu(declared: &str, inv: &Inventory) -> Compared {
    let files = match files_cpu(inv) {
        Ok(f) => f,
        Err(reason) => return unverified(reason, Vec::new()),
    };
    let Some(wanted) = normalize_target(declared).and_then(|n| target_features(files.arch, &n))
    else {
        return unverified("not a target archspec knows", Vec::new());
    };
    let says = inv
        .microarch
        .required
        .clone()
        .unwrap_or_else(|| format!("{} (its baseline)", files.arch));
    let lacking: Vec<&String> = files.features.difference(&wanted).collect();
    if !lacking.is_empty() {
        let needs: Vec<&str> = lacking.iter().map(|s| s.as_str()).collect();
        let by: Vec<String> = inv
            .microarch
            .signals
            .iter()
            .filter(|s| s.features.iter().any(|f| lacking.contains(&f)))
            .map(|s| format!("{} ({} {})", s.source, s.kind, s.target))
            .collect();
        return contradicts(format!("{says}, which needs {}", needs.join(" ")), by);
    }
    if covers_exactly(&wanted, &files.features) {
        return match inv.microarch.status {
            TargetStatus::Recorded => agrees(says, files.from),
            _ => agrees(format!("{says} (a lower bound)"), files.from),
        };
    }
    unverified(
        format!(
            "{says}: the label asks for more than the files record (code they cannot show, such \
             as run-time dispatched paths, may need it)"
        ),
        files.from,
    )
}

#[cfg(test)]
mod tests;
