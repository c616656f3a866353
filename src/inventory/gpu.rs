//! GPU software in a root, from files only (no GPU is needed to read any of this):
//! the NVIDIA driver (the kernel module's version in `/proc/driver/nvidia/version`, the
//! user-space libraries' in the suffix of `libcuda.so.<ver>` / `libnvidia-ml.so.<ver>`),
//! the CUDA runtimes a container ships ([`super::cuda`]) and ROCm
//! (`/opt/rocm/.info/version`, `libamdhip64.so.N`).

use super::cuda;
use super::elf::ElfClass;
use super::loader::{Closure, Loader};
use super::model::{Gpu, VersionFact};
use crate::input::target::ProcessSpec;

/// Reads what the root says about GPUs. `machine` is the root's ELF machine, for the
/// loader-cache lookups; `process` the container's process (for its environment);
/// `closure` what its entrypoint loads.
pub fn detect(
    loader: &Loader,
    machine: u16,
    process: Option<&ProcessSpec>,
    closure: Option<&Closure>,
) -> Gpu {
    let libraries = driver_libraries(loader, machine);
    let cuda_runtimes = cuda::runtimes(loader, machine, process, closure);
    let cuda_runtime = cuda::main_runtime(&cuda_runtimes).map(|r| VersionFact {
        version: r.version.clone().unwrap_or_default(),
        source: r.source.clone(),
    });
    let driver_problems = if libraries.is_none() {
        driver_problems(loader)
    } else {
        Vec::new()
    };
    Gpu {
        driver_problems,
        gpu_models: gpu_models(loader),
        nvidia_driver: kernel_module(loader).or_else(|| libraries.clone()),
        nvidia_libraries: libraries,
        cuda_runtime,
        cuda_runtimes,
        cuda_compat: cuda::compat(loader.root(), process),
        rocm: rocm(loader, machine),
    }
}

fn kernel_module(loader: &Loader) -> Option<VersionFact> {
    const PROC: &str = "/proc/driver/nvidia/version";
    let text = loader.root().read_text(PROC).ok()?;
    parse_proc_version(&text).map(|v| fact(v, PROC))
}

fn driver_libraries(loader: &Loader, machine: u16) -> Option<VersionFact> {
    ["libcuda.so.1", "libnvidia-ml.so.1"]
        .iter()
        .find_map(|soname| library_suffix(loader, machine, soname))
}

/// Why the driver libraries the loader cache lists give no version: each listed
/// `libcuda.so.1` / `libnvidia-ml.so.1` that resolves to no file, or to one whose name
/// does not carry the driver's version.
fn driver_problems(loader: &Loader) -> Vec<String> {
    let Some(cache) = &loader.cache else {
        return Vec::new();
    };
    let root = loader.root();
    let mut out = Vec::new();
    for entry in cache
        .entries
        .iter()
        .filter(|e| e.soname == "libcuda.so.1" || e.soname == "libnvidia-ml.so.1")
    {
        let problem = match root.canonicalize(&entry.path) {
            Err(e) => format!(
                "{} (listed in /etc/ld.so.cache as {}) does not resolve: {e}",
                entry.path, entry.soname
            ),
            Ok(real) if !root.is_file(&real) => format!(
                "{} (listed in /etc/ld.so.cache as {}) resolves to {real}, which is not a regular file",
                entry.path, entry.soname
            ),
            Ok(real) => format!(
                "{} (listed in /etc/ld.so.cache as {}) resolves to {real}, whose name does not carry the driver version",
                entry.path, entry.soname
            ),
        };
        if !out.contains(&problem) {
            out.push(problem);
        }
    }
    out
}

/// The model of each GPU the kernel module lists (`Model: Tesla V100-SXM2-16GB`).
fn gpu_models(loader: &Loader) -> Vec<String> {
    const GPUS: &str = "/proc/driver/nvidia/gpus";
    let root = loader.root();
    let mut ids: Vec<String> = root
        .list_dir(GPUS)
        .unwrap_or_default()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    ids.sort();
    ids.truncate(64);
    ids.iter()
        .filter_map(|id| root.read_text(&format!("{GPUS}/{id}/information")).ok())
        .filter_map(|text| parse_model(&text))
        .collect()
}

/// The `Model:` line of a GPU's `information` file.
pub fn parse_model(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("Model:"))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
}

/// "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 ..." -> 535.104.05
pub fn parse_proc_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    let after = line.split("Kernel Module").nth(1)?;
    let word = after.split_whitespace().next()?;
    is_numeric_version(word).then(|| word.to_string())
}

fn rocm(loader: &Loader, machine: u16) -> Option<VersionFact> {
    const INFO: &str = "/opt/rocm/.info/version";
    if let Ok(text) = loader.root().read_text(INFO) {
        let v = text
            .trim()
            .split('-')
            .next()
            .unwrap_or_default()
            .to_string();
        if is_numeric_version(&v) {
            return Some(fact(v, INFO));
        }
    }
    ["libamdhip64.so.6", "libamdhip64.so.5", "libamdhip64.so.7"]
        .iter()
        .find_map(|soname| library_suffix(loader, machine, soname))
}

/// The version in the file name a soname resolves to: `libcuda.so.1` ->
/// `libcuda.so.535.104.05` -> `535.104.05`.
fn library_suffix(loader: &Loader, machine: u16, soname: &str) -> Option<VersionFact> {
    let found = loader.find_plain(soname, machine, ElfClass::Elf64)?;
    let real = loader.root().canonicalize(&found.path).ok()?;
    let name = real.rsplit('/').next()?;
    let stem = soname.split(".so").next()?;
    let suffix = name.strip_prefix(stem)?.strip_prefix(".so.")?;
    // The soname's own number alone ("1") says nothing about the version.
    (suffix.contains('.') && is_numeric_version(suffix)).then(|| fact(suffix.to_string(), &real))
}

fn is_numeric_version(v: &str) -> bool {
    !v.is_empty()
        && v.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn fact(version: String, source: &str) -> VersionFact {
    VersionFact {
        version,
        source: source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_version() {
        let text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\nGCC version:  gcc version 12.2.0\n";
        assert_eq!(parse_proc_version(text).as_deref(), Some("535.104.05"));
        assert_eq!(parse_proc_version("garbage"), None);
    }

    #[test]
    fn gpu_model() {
        let text = "Model: \t\t Tesla V100-SXM2-16GB\nIRQ:   \t\t 96\nGPU UUID: \t GPU-1\n";
        assert_eq!(parse_model(text).as_deref(), Some("Tesla V100-SXM2-16GB"));
        assert_eq!(parse_model("IRQ: 3\n"), None);
        assert_eq!(parse_model("Model:   \n"), None);
    }
}
