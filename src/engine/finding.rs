//! Findings: what the rules conclude about a host and a container, as data.
//!
//! A finding carries a stable kebab-case code (`glibc-too-old`), a severity, a message, an
//! optional hint, and the objects and versions involved. One value feeds both the JSON report
//! and the human output, and the policy ([`super::policy`]) acts on codes, so the code list
//! here is the contract with admins (config keys, annotations) and with scripts that read the
//! JSON: codes are only ever added, never renamed.

use std::fmt;
use std::str::FromStr;

/// How much a finding matters: an error blocks a container start, a warning never does.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares the codes once: the enum, its list, its names, descriptions and default
/// severities cannot drift apart, and a new code cannot be forgotten in [`Code::all`].
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $severity:ident, $description:literal;)*) => {
        /// The stable code of a finding. Serialized in kebab-case, the same spelling as
        /// [`Code::as_str`], the config file's `[policy]` keys and the policy annotations.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
            schemars::JsonSchema,
        )]
        #[serde(rename_all = "kebab-case")]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// Every code, in declaration order.
            pub fn all() -> &'static [Code] {
                Self::ALL
            }

            /// The kebab-case name: `glibc-too-old`.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            /// One line saying what the rule is about.
            pub fn description(&self) -> &'static str {
                match self {
                    $(Code::$variant => $description,)*
                }
            }

            /// The severity a finding gets before the policy acts on it.
            pub fn default_severity(&self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)*
                }
            }
        }
    };
}

codes! {
    ArchMismatch = "arch-mismatch", Error,
        "the container's ELF machine or class differs from the host's";
    LibcFamilyMismatch = "libc-family-mismatch", Error,
        "a glibc-linked host library cannot load into a musl container";
    StaticEntrypoint = "static-entrypoint", Error,
        "a statically linked entrypoint cannot use injected libraries";
    GlibcTooOld = "glibc-too-old", Error,
        "an object needs a glibc version (GLIBC_2.x) that the glibc it will run against does not define";
    SymbolVersionMissing = "symbol-version-missing", Error,
        "an object needs a symbol version (GLIBCXX_3.4.x, GCC_x, FABRIC_1.x...) that the library providing it does not define";
    GlibcPartialInjection = "glibc-partial-injection", Error,
        "glibc's parts are one unit: injecting some of them without the rest breaks the loader";
    LibraryMissing = "library-missing", Error,
        "a needed library resolves to no file after injection";
    LdCacheTooLarge = "ld-cache-too-large", Error,
        "the container's loader cache is beyond what containerspec reads (size or entries): what the loader will load cannot be judged";
    LibraryUnloadable = "library-unloadable", Error,
        "the loader's search for a library the program needs ends at a file it refuses (not ELF, too short): the program cannot start";
    MpiNotFound = "mpi-not-found", Error,
        "mpi injection was requested but the host or the container has no MPI library";
    MpiAbiFamilyMismatch = "mpi-abi-family-mismatch", Error,
        "the host's MPI and the container's MPI belong to different ABI families (MPICH against Open MPI)";
    MpiStandardAbiMissing = "mpi-standard-abi-missing", Error,
        "the container links the MPI standard ABI (libmpi_abi.so.N) and no host installation provides that ABI version";
    /// Only a warning: the files cannot tell whether two releases' drafts agree.
    MpiAbiDraft = "mpi-abi-draft", Warning,
        "the container links libmpi_abi.so.0, the draft of the MPI standard ABI that MPICH 5.0.0 and 5.0.1 built, and the host's is another release's";
    /// Only a warning: an older host MPI of the same family often works; the symbol check
    /// (`mpi-symbol-missing`) decides.
    MpiHostOlder = "mpi-host-older", Warning,
        "the host's MPI is older than the container's, within one ABI family";
    MpiSymbolMissing = "mpi-symbol-missing", Error,
        "the container imports an MPI symbol that the host's MPI library does not define";
    Openmpi5RemovedInterface = "openmpi5-removed-interface", Error,
        "the container needs an Open MPI interface that Open MPI 5 removed (libmpi_cxx, libopen-rte, libopen-pal)";
    /// Only a warning: applications that link only `libmpi` still work; the container's own
    /// tools that link Open MPI's internals may not.
    OpenmpiInternalsLinked = "openmpi-internals-linked", Warning,
        "a container binary links Open MPI's internal libraries, which differ between host and container";
    LibraryShadowed = "library-shadowed", Error,
        "after injection a needed library still resolves to the container's copy instead of the host's";
    /// Only a warning: the plugin is one of many a library may load, and may never be used.
    PluginUnverified = "plugin-unverified", Warning,
        "a host plugin that the injected libraries load could not be verified";
    /// Only a warning: the job loses one provider or component and falls back to another.
    PluginUnusable = "plugin-unusable", Warning,
        "a host plugin (a libfabric provider, an MPI component) cannot load in the container";
    EnvironmentRequired = "environment-required", Error,
        "the injected libraries need an environment variable that the container's environment does not set";
    /// Only a warning: what could not be read is not verified, and the report says so.
    HostMpiIncomplete = "host-mpi-incomplete", Warning,
        "part of the host's MPI installation could not be read, so it is not verified";
    MicroarchUnsupported = "microarch-unsupported", Error,
        "the container needs a CPU microarchitecture (features) that the host lacks";
    /// Only a warning: the code may check the CPU before it runs what the host lacks.
    MicroarchUnverified = "microarch-unverified", Warning,
        "part of an object was built for CPU features the host lacks, and the files cannot tell whether that code runs only after a check of the CPU";
    /// Information: nothing wrong is known, but nothing is verified either.
    MicroarchUnknown = "microarch-unknown", Info,
        "objects record no CPU target, so what they need of the CPU is unknown";
    /// Only a warning: what the name stands for is unknown, so it is not verified.
    CpuTargetUnknown = "cpu-target-unknown", Warning,
        "a label or a recorded build option names a CPU target that containerspec does not know";
    /// Information: the image runs, and could run faster.
    MicroarchHeadroom = "microarch-headroom", Info,
        "the host supports a higher x86-64 level than the image is built for: a build for it may run faster";
    CudaDriverTooOld = "cuda-driver-too-old", Error,
        "the host's NVIDIA driver is older than the container's CUDA runtime needs";
    GpuDriverMissing = "gpu-driver-missing", Error,
        "the container uses a GPU runtime but the host has no matching GPU driver";
    GpuDriverMismatch = "gpu-driver-mismatch", Error,
        "the NVIDIA libraries that would load are another version than the host's kernel module (driver/library version mismatch)";
    /// Only a warning: the runtime is there, and what it needs of the driver is known only
    /// down to its major version.
    CudaRuntimeUnversioned = "cuda-runtime-unversioned", Warning,
        "the container ships a CUDA runtime whose version no file states, so the driver check is only as exact as its major version";
    /// Only a warning: NVIDIA's own runtime refuses the start, containerspec's injection
    /// does not depend on it.
    CudaRequirementInvalid = "cuda-requirement-invalid", Warning,
        "an NVIDIA variable of the container (NVIDIA_REQUIRE_CUDA, NVIDIA_DRIVER_CAPABILITIES) does not parse, so what it asks of the driver is not checked";
    /// Only a warning: the files decide, a label is a claim.
    LabelMismatch = "label-mismatch", Warning,
        "a label or annotation declared on the image contradicts what its files say";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a finding code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule \"{name}\" (expected one of: {})", valid_codes())]
pub struct UnknownCode {
    pub name: String,
}

fn valid_codes() -> String {
    let names: Vec<&str> = Code::all().iter().map(Code::as_str).collect();
    names.join(", ")
}

impl FromStr for Code {
    type Err = UnknownCode;

    fn from_str(name: &str) -> Result<Code, UnknownCode> {
        Code::all()
            .iter()
            .copied()
            .find(|code| code.as_str() == name)
            .ok_or_else(|| UnknownCode {
                name: name.to_string(),
            })
    }
}

/// One conclusion of the rules. `objects` are the files involved (paths as the container
/// sees them, or host paths for injected libraries); `versions` are the versions involved
/// (`GLIBC_2.34`, `4.1.4`, `12.2`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub hint: Option<String>,
    pub objects: Vec<String>,
    pub versions: Vec<String>,
}

impl Finding {
    /// A finding with its code's default severity.
    pub fn new(code: Code, message: impl Into<String>) -> Finding {
        Finding {
            code,
            severity: code.default_severity(),
            message: message.into(),
            hint: None,
            objects: Vec::new(),
            versions: Vec::new(),
        }
    }

    /// Sets what a person can do about it.
    #[must_use]
    pub fn hint(self, hint: impl Into<String>) -> Finding {
        Finding {
            hint: Some(hint.into()),
            ..self
        }
    }

    /// Demotes to a warning: for the cases a rule knows are survivable although its code
    /// errs by default (minor-version CUDA compatibility, a weak MPI symbol).
    #[must_use]
    pub fn severity_warning(self) -> Finding {
        Finding {
            severity: Severity::Warning,
            ..self
        }
    }

    /// Adds files involved.
    #[must_use]
    pub fn objects(mut self, objects: impl IntoIterator<Item = impl Into<String>>) -> Finding {
        self.objects.extend(objects.into_iter().map(Into::into));
        self
    }

    /// Adds versions involved.
    #[must_use]
    pub fn versions(mut self, versions: impl IntoIterator<Item = impl Into<String>>) -> Finding {
        self.versions.extend(versions.into_iter().map(Into::into));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warnings named in the design; every other code is an error by default.
    const WARNINGS: &[Code] = &[
        Code::MpiAbiDraft,
        Code::MpiHostOlder,
        Code::OpenmpiInternalsLinked,
        Code::LabelMismatch,
        Code::PluginUnverified,
        Code::PluginUnusable,
        Code::HostMpiIncomplete,
        Code::MicroarchUnverified,
        Code::CpuTargetUnknown,
        Code::CudaRuntimeUnversioned,
        Code::CudaRequirementInvalid,
    ];

    /// Information only.
    const INFOS: &[Code] = &[Code::MicroarchUnknown, Code::MicroarchHeadroom];

    #[test]
    fn every_code_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::all() {
            assert!(seen.insert(*code), "{code} listed twice");
        }
        assert_eq!(seen.len(), 33);
    }

    #[test]
    fn names_match_the_serialized_form() {
        for code in Code::all() {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: Code = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn names_are_kebab_case_and_parse_back() {
        for code in Code::all() {
            let name = code.as_str();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert_eq!(name.parse::<Code>(), Ok(*code));
            assert_eq!(code.to_string(), name);
        }
    }

    #[test]
    fn codes_spelled_as_in_the_design() {
        let table = [
            (Code::ArchMismatch, "arch-mismatch"),
            (Code::GlibcTooOld, "glibc-too-old"),
            (Code::GlibcPartialInjection, "glibc-partial-injection"),
            (Code::MpiAbiFamilyMismatch, "mpi-abi-family-mismatch"),
            (Code::Openmpi5RemovedInterface, "openmpi5-removed-interface"),
            (Code::MicroarchUnsupported, "microarch-unsupported"),
            (Code::CudaDriverTooOld, "cuda-driver-too-old"),
            (Code::LabelMismatch, "label-mismatch"),
        ];
        for (code, name) in table {
            assert_eq!(code.as_str(), name);
        }
    }

    #[test]
    fn default_severities() {
        for code in Code::all() {
            let expected = if WARNINGS.contains(code) {
                Severity::Warning
            } else if INFOS.contains(code) {
                Severity::Info
            } else {
                Severity::Error
            };
            assert_eq!(code.default_severity(), expected, "{code}");
        }
    }

    #[test]
    fn descriptions_are_one_lowercase_line_without_period() {
        for code in Code::all() {
            let text = code.description();
            assert!(!text.is_empty() && !text.contains('\n'), "{code}");
            assert!(!text.ends_with('.'), "{code}: {text}");
            assert!(
                text.starts_with(|c: char| !c.is_uppercase()),
                "{code}: {text}"
            );
        }
    }

    #[test]
    fn unknown_code_names_it_and_lists_the_valid_ones() {
        let err = "glibc-too-new".parse::<Code>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"glibc-too-new\""), "{text}");
        for code in Code::all() {
            assert!(text.contains(code.as_str()), "{text} lacks {code}");
        }
    }

    #[test]
    fn parsing_is_exact() {
        for name in [
            "",
            "Glibc-Too-Old",
            " glibc-too-old",
            "glibc_too_old",
            "GlibcTooOld",
        ] {
            assert!(name.parse::<Code>().is_err(), "{name:?}");
        }
    }

    #[test]
    fn severities_order_and_spell() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Error);
        for (severity, name) in [
            (Severity::Info, "info"),
            (Severity::Warning, "warning"),
            (Severity::Error, "error"),
        ] {
            assert_eq!(severity.to_string(), name);
            assert_eq!(
                serde_json::to_string(&severity).unwrap(),
                format!("\"{name}\"")
            );
        }
    }

    #[test]
    fn builder_fills_every_field() {
        let finding = Finding::new(Code::GlibcTooOld, "libmpi.so.12 needs GLIBC_2.34")
            .hint("use a container with glibc 2.34 or newer")
            .objects(["/usr/lib/libmpi.so.12"])
            .objects(vec![String::from("/usr/lib/libfabric.so.1")])
            .versions(["GLIBC_2.34"]);
        assert_eq!(finding.severity, Severity::Error);
        assert_eq!(
            finding.hint.as_deref(),
            Some("use a container with glibc 2.34 or newer")
        );
        assert_eq!(
            finding.objects,
            ["/usr/lib/libmpi.so.12", "/usr/lib/libfabric.so.1"]
        );
        assert_eq!(finding.versions, ["GLIBC_2.34"]);
        assert_eq!(
            Finding::new(Code::MpiHostOlder, "x").severity,
            Severity::Warning
        );
    }

    #[test]
    fn json_shape_is_stable() {
        let finding = Finding::new(Code::MpiHostOlder, "host MPICH 4.0 is older than 4.1")
            .versions(["4.0", "4.1"]);
        let json = serde_json::to_value(&finding).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "code": "mpi-host-older",
                "severity": "warning",
                "message": "host MPICH 4.0 is older than 4.1",
                "hint": null,
                "objects": [],
                "versions": ["4.0", "4.1"],
            })
        );
    }
}
