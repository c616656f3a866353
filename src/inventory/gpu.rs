//! GPU software in a root, from files only (no GPU is needed to read any of this):
//! the NVIDIA driver version (`/proc/driver/nvidia/version`, else the version suffix of
//! `libcuda.so.<ver>` / `libnvidia-ml.so.<ver>`), the CUDA runtime a container ships
//! (`/usr/local/cuda/version.json`, `libcudart.so.X.Y.Z`, `CUDA_VERSION`,
//! `NVIDIA_REQUIRE_CUDA`) and ROCm (`/opt/rocm/.info/version`, `libamdhip64.so.N`).

use super::elf::ElfClass;
use super::loader::Loader;
use super::model::{Gpu, VersionFact};
use crate::input::target::ProcessSpec;

/// Reads what the root says about GPUs. `machine` is the root's ELF machine, for the
/// loader-cache lookups; `process` the container's process (for its environment).
pub fn detect(loader: &Loader, machine: u16, process: Option<&ProcessSpec>) -> Gpu {
    Gpu {
        nvidia_driver: nvidia_driver(loader, machine),
        cuda_runtime: cuda_runtime(loader, machine, process),
        rocm: rocm(loader, machine),
    }
}

fn nvidia_driver(loader: &Loader, machine: u16) -> Option<VersionFact> {
    const PROC: &str = "/proc/driver/nvidia/version";
    if let Ok(text) = loader.root().read_text(PROC) {
        if let Some(v) = parse_proc_version(&text) {
            return Some(fact(v, PROC));
        }
    }
    ["libcuda.so.1", "libnvidia-ml.so.1"]
        .iter()
        .find_map(|soname| library_suffix(loader, machine, soname))
}

/// "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 ..." -> 535.104.05
pub fn parse_proc_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    let after = line.split("Kernel Module").nth(1)?;
    let word = after.split_whitespace().next()?;
    is_numeric_version(word).then(|| word.to_string())
}

fn cuda_runtime(
    loader: &Loader,
    machine: u16,
    process: Option<&ProcessSpec>,
) -> Option<VersionFact> {
    const JSON: &str = "/usr/local/cuda/version.json";
    if let Some(v) = loader
        .root()
        .read_text(JSON)
        .ok()
        .and_then(|t| parse_version_json(&t))
    {
        return Some(fact(v, JSON));
    }
    if let Some(f) = library_suffix(loader, machine, "libcudart.so.12")
        .or_else(|| library_suffix(loader, machine, "libcudart.so.11.0"))
        .or_else(|| library_suffix(loader, machine, "libcudart.so.13"))
    {
        return Some(f);
    }
    let process = process?;
    if let Some(v) = process
        .env_var("CUDA_VERSION")
        .filter(|v| is_numeric_version(v))
    {
        return Some(fact(v.to_string(), "env CUDA_VERSION"));
    }
    process
        .env_var("NVIDIA_REQUIRE_CUDA")
        .and_then(parse_require_cuda)
        .map(|v| fact(v, "env NVIDIA_REQUIRE_CUDA"))
}

/// `{"cuda": {"name": "CUDA SDK", "version": "12.2.2"}, ...}`
pub fn parse_version_json(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let v = value.get("cuda")?.get("version")?.as_str()?;
    is_numeric_version(v).then(|| v.to_string())
}

/// `cuda>=12.2 brand=tesla,driver>=470,driver<471` -> 12.2
pub fn parse_require_cuda(text: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("cuda>="))
        .filter(|v| is_numeric_version(v))
        .map(str::to_string)
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
    fn cuda_sources() {
        assert_eq!(
            parse_version_json(r#"{"cuda":{"name":"CUDA SDK","version":"12.2.2"}}"#).as_deref(),
            Some("12.2.2")
        );
        assert_eq!(parse_version_json("{"), None);
        assert_eq!(
            parse_require_cuda("cuda>=12.2 brand=tesla,driver>=470").as_deref(),
            Some("12.2")
        );
        assert_eq!(parse_require_cuda("brand=tesla"), None);
    }
}
