//! The NVIDIA driver's parts by capability, as data: which libraries and programs a
//! container gets for each `NVIDIA_DRIVER_CAPABILITIES` value. The lists follow NVIDIA's
//! container library (libnvidia-container, `src/nvc_info.c`), so that an image gets what
//! it would get from NVIDIA's own runtime, no more.

use std::collections::BTreeSet;

/// A driver capability an image can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    Compute,
    Utility,
    Video,
    Graphics,
    Ngx,
}

const ALL: [Capability; 5] = [
    Capability::Compute,
    Capability::Utility,
    Capability::Video,
    Capability::Graphics,
    Capability::Ngx,
];

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Compute => "compute",
            Capability::Utility => "utility",
            Capability::Video => "video",
            Capability::Graphics => "graphics",
            Capability::Ngx => "ngx",
        }
    }
}

/// Library names (before `.so`) of each capability.
const LIBRARIES: &[(Capability, &[&str])] = &[
    (
        Capability::Utility,
        &["libnvidia-ml", "libnvidia-cfg", "libnvidia-nscq"],
    ),
    (
        Capability::Compute,
        &[
            "libcuda",
            "libcudadebugger",
            "libnvidia-opencl",
            "libnvidia-gpucomp",
            "libnvidia-ptxjitcompiler",
            "libnvidia-fatbinaryloader",
            "libnvidia-allocator",
            "libnvidia-compiler",
            "libnvidia-pkcs11",
            "libnvidia-pkcs11-openssl3",
            "libnvidia-nvvm",
            "libnvidia-tileiras",
        ],
    ),
    (
        Capability::Video,
        &[
            "libvdpau_nvidia",
            "libnvidia-encode",
            "libnvidia-opticalflow",
            "libnvcuvid",
        ],
    ),
    (
        Capability::Graphics,
        &[
            "libnvidia-eglcore",
            "libnvidia-glcore",
            "libnvidia-tls",
            "libnvidia-glsi",
            "libnvidia-fbc",
            "libnvidia-ifr",
            "libnvidia-rtcore",
            "libnvoptix",
            "libGLX_nvidia",
            "libEGL_nvidia",
            "libGLESv2_nvidia",
            "libGLESv1_CM_nvidia",
            "libnvidia-glvkspirv",
            "libnvidia-cbl",
        ],
    ),
    (Capability::Ngx, &["libnvidia-ngx"]),
];

/// The driver's programs of each capability.
pub const PROGRAMS: &[(Capability, &str)] = &[
    (Capability::Utility, "nvidia-smi"),
    (Capability::Utility, "nvidia-debugdump"),
    (Capability::Utility, "nvidia-persistenced"),
    (Capability::Utility, "nv-fabricmanager"),
    (Capability::Compute, "nvidia-cuda-mps-control"),
    (Capability::Compute, "nvidia-cuda-mps-server"),
];

/// Every driver library name (before `.so`), for discovery on the host.
pub fn library_stems() -> impl Iterator<Item = &'static str> {
    LIBRARIES
        .iter()
        .flat_map(|(_, names)| names.iter().copied())
}

/// The capability a driver library (`libnvidia-ml.so.1`, `libcuda.so.535.104.05`)
/// belongs to; None for a name NVIDIA's lists do not have.
pub fn capability_of(library: &str) -> Option<Capability> {
    let stem = library.split(".so").next()?;
    LIBRARIES
        .iter()
        .find(|(_, names)| names.contains(&stem))
        .map(|(c, _)| *c)
}

/// `NVIDIA_DRIVER_CAPABILITIES` as NVIDIA's runtime reads it: comma-separated, `all` for
/// every one; unset or empty means `utility,compute`. The error names an unknown value.
pub fn parse_capabilities(value: Option<&str>) -> Result<BTreeSet<Capability>, String> {
    let value = value.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Ok([Capability::Utility, Capability::Compute].into());
    }
    let mut out = BTreeSet::new();
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if word == "all" {
            out.extend(ALL);
            continue;
        }
        // `compat32` and `display` exist and give nothing a 64-bit container needs here.
        if matches!(word, "compat32" | "display") {
            continue;
        }
        match ALL.iter().find(|c| c.as_str() == word) {
            Some(c) => {
                out.insert(*c);
            }
            None => return Err(format!("unknown capability {word:?}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_by_capability() {
        assert_eq!(capability_of("libcuda.so.1"), Some(Capability::Compute));
        assert_eq!(
            capability_of("libcuda.so.535.104.05"),
            Some(Capability::Compute)
        );
        assert_eq!(
            capability_of("libnvidia-ml.so.1"),
            Some(Capability::Utility)
        );
        assert_eq!(
            capability_of("libnvidia-pkcs11-openssl3.so.535.309.01"),
            Some(Capability::Compute)
        );
        assert_eq!(capability_of("libnvcuvid.so.1"), Some(Capability::Video));
        assert_eq!(
            capability_of("libGLX_nvidia.so.0"),
            Some(Capability::Graphics)
        );
        assert_eq!(capability_of("libnvidia-gtk3.so.535.104.05"), None);
        assert_eq!(capability_of("libc.so.6"), None);
    }

    #[test]
    fn capabilities_as_nvidia_reads_them() {
        use Capability::*;
        assert_eq!(parse_capabilities(None).unwrap(), [Utility, Compute].into());
        assert_eq!(
            parse_capabilities(Some("")).unwrap(),
            [Utility, Compute].into()
        );
        assert_eq!(
            parse_capabilities(Some("utility")).unwrap(),
            [Utility].into()
        );
        assert_eq!(
            parse_capabilities(Some("compute, video,display")).unwrap(),
            [Compute, Video].into()
        );
        assert_eq!(parse_capabilities(Some("all")).unwrap().len(), 5);
        assert_eq!(
            parse_capabilities(Some("compute,gpu")).unwrap_err(),
            "unknown capability \"gpu\""
        );
    }
}
