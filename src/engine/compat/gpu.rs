//! The GPU rules: each CUDA runtime the container ships against the driver that will
//! serve it (the host's, or the container's forward-compatibility `libcuda` where that
//! loads), the host's kernel module against its libraries, and the container's own
//! copies of the driver libraries that would load instead of the injected ones.

use super::super::cuda::{
    self, CompatUse, CudaCheck, container_compat, judged_version, parse_requirement,
};
use super::super::facts::Facts;
use super::super::finding::{Code, Finding};
use super::super::nvidia;
use super::super::plan::Selection;
use super::super::request::Inject;
use crate::inventory::model::{CudaRuntime, VersionFact};

pub(super) fn gpu(facts: &Facts, inject: &Inject, sel: &Selection, out: &mut Vec<Finding>) {
    let runtimes: &[CudaRuntime] = facts
        .container
        .inventory
        .as_ref()
        .map_or(&[], |i| &i.gpu.cuda_runtimes);
    let host_gpu = facts.host.inventory.as_ref().map(|i| &i.gpu);
    let driver = host_gpu.and_then(|g| g.nvidia_driver.as_ref());
    if inject.gpu || !runtimes.is_empty() {
        if let Some(g) = host_gpu {
            mismatch(g.nvidia_driver.as_ref(), g.nvidia_libraries.as_ref(), out);
        }
    }
    if let Some(text) = facts.container.env.get("NVIDIA_REQUIRE_CUDA") {
        if let Err(e) = parse_requirement(text) {
            out.push(
                Finding::new(
                    Code::CudaRequirementInvalid,
                    format!("the container's NVIDIA_REQUIRE_CUDA does not parse: {e}"),
                )
                .hint("NVIDIA's runtime reads it as space-separated alternatives of comma-separated conditions on cuda, driver, arch and brand (cuda>=12.4 brand=tesla,driver>=535,driver<536)")
                .objects(["env NVIDIA_REQUIRE_CUDA".to_string()]),
            );
        }
    }
    let caps = facts.container.env.get("NVIDIA_DRIVER_CAPABILITIES");
    match nvidia::parse_capabilities(caps.map(String::as_str)) {
        Err(e) => out.push(
            Finding::new(
                Code::CudaRequirementInvalid,
                format!("the container's NVIDIA_DRIVER_CAPABILITIES does not parse: {e}; the default (compute, utility) is injected"),
            )
            .hint("NVIDIA's runtime takes a comma-separated list of compute, utility, video, graphics, ngx, display, compat32, or all")
            .objects(["env NVIDIA_DRIVER_CAPABILITIES".to_string()]),
        ),
        Ok(set) => {
            if inject.gpu && !runtimes.is_empty() && !set.contains(&nvidia::Capability::Compute) {
                out.push(
                    Finding::new(
                        Code::GpuDriverMissing,
                        format!(
                            "the container ships a CUDA runtime ({}) but its NVIDIA_DRIVER_CAPABILITIES ({}) leaves out compute: libcuda is not injected, so CUDA cannot start",
                            runtimes[0].library.as_deref().unwrap_or(&runtimes[0].source),
                            caps.map_or("", String::as_str)
                        ),
                    )
                    .hint("add compute to the image's NVIDIA_DRIVER_CAPABILITIES")
                    .objects(["env NVIDIA_DRIVER_CAPABILITIES".to_string()]),
                );
            }
        }
    }
    let compat = container_compat(facts, inject);
    shadowed(facts, sel, compat.as_ref().map(|(_, c)| *c), out);
    if runtimes.is_empty() {
        return;
    }
    let Some(driver) = driver else {
        // With gpu injection requested and no driver libraries, the injection rule
        // says so (and why they could not be read).
        if inject.gpu && !facts.host.gpu_libs.is_empty() {
            let main = cuda::deciding_runtime(runtimes);
            out.push(
                Finding::new(
                    Code::GpuDriverMissing,
                    format!(
                        "the container uses CUDA {} but the host has no NVIDIA driver",
                        main.and_then(judged_version).unwrap_or_default()
                    ),
                )
                .objects(main.map(|r| r.source.clone())),
            );
        }
        return;
    };
    for runtime in runtimes {
        judge(runtime, driver, compat.as_ref().map(|(u, _)| u), out);
    }
    if let Some((CompatUse::Refused { reason }, c)) = &compat {
        // A refusal that no runtime's message carried: the libraries load and fail.
        if c.on_ld_library_path && !out.iter().any(|f| f.message.contains(reason.as_str())) {
            out.push(
                Finding::new(Code::GpuDriverMismatch, reason.clone())
                    .hint("remove the forward-compatibility directory from the image's LD_LIBRARY_PATH on hosts with a newer driver")
                    .objects([c.libcuda.clone(), driver.source.clone()]),
            );
        }
    }
}

/// The kernel module and the user-space libraries of one driver must be the same build.
fn mismatch(kernel: Option<&VersionFact>, libs: Option<&VersionFact>, out: &mut Vec<Finding>) {
    let (Some(kernel), Some(libs)) = (kernel, libs) else {
        return;
    };
    if kernel.version == libs.version || kernel.source == libs.source {
        return;
    }
    out.push(
        Finding::new(
            Code::GpuDriverMismatch,
            format!(
                "driver/library version mismatch: the NVIDIA kernel module is {} ({}) but the driver's libraries are {} ({})",
                kernel.version, kernel.source, libs.version, libs.source
            ),
        )
        .hint("the driver was upgraded without reloading the kernel module: reboot the node (or reload nvidia.ko), or reinstall the libraries that match the module")
        .objects([kernel.source.clone(), libs.source.clone()])
        .versions([kernel.version.clone(), libs.version.clone()]),
    );
}

/// One runtime against the driver that serves it.
fn judge(
    runtime: &CudaRuntime,
    driver: &VersionFact,
    compat: Option<&CompatUse>,
    out: &mut Vec<Finding>,
) {
    let where_ = runtime.library.as_deref().unwrap_or(&runtime.source);
    let Some(version) = judged_version(runtime) else {
        out.push(
            Finding::new(
                Code::CudaRuntimeUnversioned,
                format!("the container ships a CUDA runtime ({where_}) whose version and major no file states: it is not checked against the driver"),
            )
            .hint("install the runtime with its metadata (the pip wheel's dist-info, conda's record, the toolkit's version.json), or set CUDA_VERSION")
            .objects([where_.to_string()]),
        );
        return;
    };
    let what = match &runtime.version {
        Some(v) => format!(
            "the container's CUDA runtime {v} ({}, {})",
            runtime.layout, runtime.source
        ),
        None => format!(
            "the container's CUDA {} runtime ({}, {where_}; no file states its version, so CUDA {version} is assumed, the least it can be)",
            runtime.major.unwrap_or_default(),
            runtime.layout
        ),
    };
    let objects = [where_.to_string(), driver.source.clone()];
    let host = &driver.version;
    let versions = [host.clone(), version.clone()];
    // The driver that answers the runtime: the compat libcuda where it loads.
    let served_by = match compat {
        Some(CompatUse::Used { by_plan, driver }) => Some((*by_plan, driver.clone())),
        _ => None,
    };
    let check = match &served_by {
        Some((_, compat_driver)) => cuda::check(compat_driver, &version, false),
        None => cuda::check(host, &version, false),
    };
    if runtime.version.is_none() && !matches!(check, CudaCheck::TooOld { .. }) {
        out.push(
            Finding::new(Code::CudaRuntimeUnversioned, format!("{what}: the driver {host} runs CUDA {version}, but the runtime may be a later {} release", runtime.major.unwrap_or_default()))
                .hint("install the runtime with its metadata (the pip wheel's dist-info, conda's record, the toolkit's version.json), or set CUDA_VERSION")
                .objects(objects.clone())
                .versions(versions.clone()),
        );
    }
    if let Some((by_plan, compat_driver)) = &served_by {
        if !matches!(check, CudaCheck::TooOld { .. }) {
            let how = if *by_plan {
                "the plan's loader cache puts them first"
            } else {
                "the container's LD_LIBRARY_PATH loads them"
            };
            out.push(
                Finding::new(Code::CudaDriverTooOld, format!("{what} runs on the host driver {host} only through the container's forward-compatibility libcuda {compat_driver} ({how}); NVIDIA supports that on data-centre GPUs only, which the files cannot tell"))
                    .severity_warning()
                    .hint("check that the node's GPUs are data-centre GPUs, or run on a node whose driver supports the runtime natively")
                    .objects(objects)
                    .versions(versions),
            );
            return;
        }
    }
    match check {
        CudaCheck::Supported => {}
        CudaCheck::MinorVersionCompatible { driver_cuda } => out.push(
            Finding::new(Code::CudaDriverTooOld, format!("{what} is newer than the host driver {host} (CUDA {driver_cuda}); it runs through minor-version compatibility, but PTX JIT and newer features may fail"))
                .severity_warning()
                .objects(objects)
                .versions(versions),
        ),
        CudaCheck::ForwardCompatible { .. } => {}
        CudaCheck::TooOld { driver_cuda, minimum_driver } => {
            let supports = driver_cuda.map(|c| format!(" (supports CUDA {c})")).unwrap_or_default();
            let needs = minimum_driver.map(|m| format!(": it needs driver {m} or newer")).unwrap_or_default();
            match compat {
                Some(CompatUse::NotLoaded { driver: compat_driver }) => out.push(
                    Finding::new(Code::CudaDriverTooOld, format!("{what} is too new for the host driver {host}{supports}; the container's forward-compatibility libcuda {compat_driver} would serve it, but it loads only if the runtime that injects the driver puts it first"))
                        .severity_warning()
                        .hint("request gpu injection from containerspec (it puts the forward-compatibility libraries first), or add their directory to the image's LD_LIBRARY_PATH")
                        .objects(objects)
                        .versions(versions),
                ),
                Some(CompatUse::Refused { reason }) => out.push(
                    Finding::new(Code::CudaDriverTooOld, format!("{what} is too new for the host driver {host}{supports}{needs}; the container's forward-compatibility libraries do not help: {reason}"))
                        .hint("use an image built for an older CUDA, or run on a node with a newer driver")
                        .objects(objects)
                        .versions(versions),
                ),
                _ => out.push(
                    Finding::new(Code::CudaDriverTooOld, format!("{what} is too new for the host driver {host}{supports}{needs}"))
                        .hint("use an image built for an older CUDA, or run on a node with a newer driver")
                        .objects(objects)
                        .versions(versions),
                ),
            }
        }
    }
}

/// An injected library that the container's `LD_LIBRARY_PATH` finds a copy of first:
/// the copy loads, not the host's. The forward-compatibility libraries the container
/// puts on its `LD_LIBRARY_PATH` on purpose are judged by the CUDA rule instead.
fn shadowed(
    facts: &Facts,
    sel: &Selection,
    compat: Option<&crate::inventory::model::CudaCompat>,
    out: &mut Vec<Finding>,
) {
    for (soname, path) in &facts.container.ld_library_path_hits {
        // The injected libraries, and the compat ones the plan puts first in their place.
        let injected = sel.deps.iter().any(|d| d.name() == soname)
            || sel.container_first.iter().any(|(s, _)| s == soname);
        if !injected {
            continue;
        }
        // `on_ld_library_path` means the first directory of the path that holds a
        // libcuda.so.1 is the compat one: that hit is the image's intent.
        if compat.is_some_and(|c| c.on_ld_library_path && c.sonames.contains(soname)) {
            continue;
        }
        out.push(
            Finding::new(Code::LibraryShadowed, format!("the container's LD_LIBRARY_PATH finds its own {soname} ({path}) before the injected one"))
                .hint("drop that directory from the image's LD_LIBRARY_PATH, or do not inject")
                .objects([path.clone()]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::finding::Severity::{self, *};
    use super::super::super::plan::{build, select};
    use super::*;
    use crate::engine::facts::Lib;
    use crate::inventory::model::{CudaCompat, CudaLayout, Inventory};

    const GPU: Inject = Inject {
        mpi: false,
        gpu: true,
    };
    const NONE: Inject = Inject {
        mpi: false,
        gpu: false,
    };

    fn runtime(version: Option<&str>, major: u32) -> CudaRuntime {
        CudaRuntime {
            version: version.map(str::to_string),
            major: Some(major),
            layout: CudaLayout::Pip,
            library: Some(format!(
                "/site/nvidia/cuda_runtime/lib/libcudart.so.{major}"
            )),
            source: "/site/nvidia_cuda_runtime-x.dist-info/METADATA".into(),
        }
    }

    fn compat(version: &str, on_path: bool) -> CudaCompat {
        CudaCompat {
            dir: "/usr/local/cuda-12.4/compat".into(),
            libcuda: format!("/usr/local/cuda-12.4/compat/libcuda.so.{version}"),
            version: Some(version.into()),
            sonames: vec![
                "libcuda.so.1".into(),
                "libnvidia-ptxjitcompiler.so.1".into(),
            ],
            on_ld_library_path: on_path,
        }
    }

    fn facts(runtimes: Vec<CudaRuntime>, driver: &str, compat: Option<CudaCompat>) -> Facts {
        let mut f = Facts::default();
        let mut c = Inventory::default();
        c.gpu.cuda_runtimes = runtimes;
        c.gpu.cuda_compat = compat;
        f.container.inventory = Some(c);
        let mut h = Inventory::default();
        let fact = |v: &str, s: &str| VersionFact {
            version: v.into(),
            source: s.into(),
        };
        h.gpu.nvidia_driver = Some(fact(driver, "/usr/lib/libcuda.so.1"));
        h.gpu.nvidia_libraries = Some(fact(driver, "/usr/lib/libcuda.so.1"));
        f.host.inventory = Some(h);
        f.host.gpu_libs = [
            "libcuda.so.1",
            "libnvidia-ml.so.1",
            "libnvidia-ptxjitcompiler.so.1",
        ]
        .iter()
        .map(|s| Lib {
            path: format!("/usr/lib/{s}.{driver}"),
            soname: Some(s.to_string()),
            cache_flags: 0x0303,
            ..Default::default()
        })
        .collect();
        f
    }

    fn findings(f: &Facts, inject: Inject) -> Vec<Finding> {
        let sel = select(f, &inject);
        let mut out = Vec::new();
        gpu(f, &inject, &sel, &mut out);
        out
    }

    fn codes(f: &Facts, inject: Inject) -> Vec<(Code, Severity)> {
        findings(f, inject)
            .iter()
            .map(|f| (f.code, f.severity))
            .collect()
    }

    #[test]
    fn runtimes_against_drivers() {
        let too_old = (Code::CudaDriverTooOld, Error);
        let minor = (Code::CudaDriverTooOld, Warning);
        let unversioned = (Code::CudaRuntimeUnversioned, Warning);
        type Row<'a> = (Option<&'a str>, u32, &'a str, Vec<(Code, Severity)>);
        let table: &[Row] = &[
            (Some("11.8.89"), 11, "470.256.02", vec![minor]),
            (Some("12.4.127"), 12, "470.256.02", vec![too_old]),
            (Some("12.4.127"), 12, "550.163.01", vec![]),
            (Some("12.9.79"), 12, "535.309.01", vec![minor]),
            (Some("13.0.48"), 13, "550.163.01", vec![too_old]),
            // No stated version: judged as X.0, the least it can need, and said so.
            (None, 12, "470.256.02", vec![too_old]),
            (None, 12, "535.309.01", vec![unversioned]),
        ];
        for (version, major, driver, expected) in table {
            let f = facts(vec![runtime(*version, *major)], driver, None);
            assert_eq!(&codes(&f, GPU), expected, "{version:?} on {driver}");
        }
    }

    #[test]
    fn every_runtime_is_judged() {
        let f = facts(
            vec![runtime(Some("11.8.89"), 11), runtime(Some("12.9.79"), 12)],
            "470.256.02",
            None,
        );
        let found = findings(&f, GPU);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[1].message.contains("12.9.79"), "{}", found[1].message);
        assert_eq!(found[1].severity, Error);
    }

    #[test]
    fn forward_compat_agrees_with_the_plan() {
        // 12.4 on a 470 driver with 550 compat libraries: the plan puts them first, and
        // the verdict says it runs through them (a warning: data-centre GPUs only).
        let f = facts(
            vec![runtime(Some("12.4.127"), 12)],
            "470.256.02",
            Some(compat("550.163.01", false)),
        );
        let found = findings(&f, GPU);
        assert_eq!(codes(&f, GPU), vec![(Code::CudaDriverTooOld, Warning)]);
        assert!(
            found[0]
                .message
                .contains("plan's loader cache puts them first")
        );
        let sel = select(&f, &GPU);
        let plan = build(&f, &sel);
        let cache = plan.ld_cache.unwrap();
        assert_eq!(cache.entries[0].soname, "libcuda.so.1");
        assert_eq!(
            cache.entries[0].path,
            "/usr/local/cuda-12.4/compat/libcuda.so.550.163.01"
        );
        // dlopen("libcuda.so") finds the same library.
        let dev = cache
            .entries
            .iter()
            .find(|e| e.soname == "libcuda.so")
            .unwrap();
        assert_eq!(
            dev.path,
            "/usr/local/cuda-12.4/compat/libcuda.so.550.163.01"
        );
        assert!(
            !sel.deps.iter().any(|d| d.name() == "libcuda.so.1"),
            "the host's libcuda is not injected"
        );
        assert!(sel.deps.iter().any(|d| d.name() == "libnvidia-ml.so.1"));
        // Without injection nothing puts them first: a warning that says so.
        let found = findings(&f, NONE);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.contains("loads only if"),
            "{}",
            found[0].message
        );
        // Natively supported: the host's libcuda, no compat entry.
        let f = facts(
            vec![runtime(Some("12.4.127"), 12)],
            "550.163.01",
            Some(compat("550.163.01", false)),
        );
        assert!(codes(&f, GPU).is_empty());
        let sel = select(&f, &GPU);
        assert!(sel.container_first.is_empty());
        assert!(sel.deps.iter().any(|d| d.name() == "libcuda.so.1"));
        let cache = build(&f, &sel).ld_cache.unwrap();
        let dev = cache
            .entries
            .iter()
            .find(|e| e.soname == "libcuda.so")
            .unwrap();
        assert_eq!(dev.path, "/run/containerspec/lib/libcuda.so.1");
    }

    #[test]
    fn forward_compat_the_image_does_not_allow_is_refused() {
        let mut f = facts(
            vec![runtime(Some("12.4.127"), 12)],
            "470.256.02",
            Some(compat("550.163.01", false)),
        );
        f.container.env.insert(
            "NVIDIA_REQUIRE_CUDA".into(),
            "cuda>=12.4 brand=tesla,driver>=535,driver<536".into(),
        );
        let found = findings(&f, GPU);
        assert_eq!(codes(&f, GPU), vec![(Code::CudaDriverTooOld, Error)]);
        assert!(
            found[0].message.contains("only on the driver branches 535"),
            "{}",
            found[0].message
        );
        assert!(select(&f, &GPU).container_first.is_empty());
        f.container.env.insert(
            "NVIDIA_REQUIRE_CUDA".into(),
            "cuda>=12.4 brand=tesla,driver>=470,driver<471".into(),
        );
        assert_eq!(codes(&f, GPU), vec![(Code::CudaDriverTooOld, Warning)]);
    }

    #[test]
    fn compat_forced_on_a_newer_driver_is_a_mismatch() {
        let f = facts(
            vec![runtime(Some("12.4.127"), 12)],
            "560.35.03",
            Some(compat("550.163.01", true)),
        );
        assert_eq!(codes(&f, GPU), vec![(Code::GpuDriverMismatch, Error)]);
    }

    #[test]
    fn an_injected_driver_library_found_first_in_the_containers_path_is_shadowed() {
        let mut f = facts(vec![runtime(Some("12.4.127"), 12)], "550.163.01", None);
        f.container
            .ld_library_path_hits
            .insert("libcuda.so.1".into(), "/opt/stub/libcuda.so.1".into());
        let found = findings(&f, GPU);
        assert_eq!(codes(&f, GPU), vec![(Code::LibraryShadowed, Error)]);
        assert!(found[0].message.contains("/opt/stub/libcuda.so.1"));
        // The compat libraries the image puts on its path on purpose are the CUDA rule's.
        let mut f = facts(
            vec![runtime(Some("12.4.127"), 12)],
            "470.256.02",
            Some(compat("550.163.01", true)),
        );
        f.container.ld_library_path_hits.insert(
            "libcuda.so.1".into(),
            "/usr/local/cuda/compat/libcuda.so.1".into(),
        );
        let found = findings(&f, GPU);
        assert_eq!(codes(&f, GPU), vec![(Code::CudaDriverTooOld, Warning)]);
        assert!(found[0].message.contains("LD_LIBRARY_PATH loads them"));
    }

    #[test]
    fn kernel_module_and_libraries_must_match() {
        let mut f = facts(vec![runtime(Some("12.2.140"), 12)], "535.309.01", None);
        if let Some(h) = f.host.inventory.as_mut() {
            h.gpu.nvidia_driver = Some(VersionFact {
                version: "535.104.05".into(),
                source: "/proc/driver/nvidia/version".into(),
            });
        }
        let found = findings(&f, GPU);
        assert_eq!(found[0].code, Code::GpuDriverMismatch);
        assert!(
            found[0]
                .message
                .starts_with("driver/library version mismatch"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn an_unparsable_requirement_is_named() {
        let mut f = facts(vec![runtime(Some("12.4.127"), 12)], "550.163.01", None);
        f.container
            .env
            .insert("NVIDIA_REQUIRE_CUDA".into(), "cuda>=twelve".into());
        let found = findings(&f, GPU);
        assert_eq!(found[0].code, Code::CudaRequirementInvalid);
        assert!(
            found[0].message.contains("\"cuda>=twelve\""),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn capabilities_choose_what_is_injected() {
        let mut f = facts(vec![runtime(Some("12.4.127"), 12)], "550.163.01", None);
        let names = |f: &Facts| -> Vec<String> {
            select(f, &GPU)
                .deps
                .iter()
                .map(|d| d.name().to_string())
                .collect()
        };
        assert_eq!(
            names(&f),
            [
                "libcuda.so.1",
                "libnvidia-ml.so.1",
                "libnvidia-ptxjitcompiler.so.1"
            ]
        );
        f.container
            .env
            .insert("NVIDIA_DRIVER_CAPABILITIES".into(), "utility".into());
        assert_eq!(names(&f), ["libnvidia-ml.so.1"]);
        let found = findings(&f, GPU);
        assert_eq!(found[0].code, Code::GpuDriverMissing);
        assert!(
            found[0].message.contains("leaves out compute"),
            "{}",
            found[0].message
        );
        f.container
            .env
            .insert("NVIDIA_DRIVER_CAPABILITIES".into(), "compute,gpu".into());
        assert_eq!(findings(&f, GPU)[0].code, Code::CudaRequirementInvalid);
        assert_eq!(names(&f).len(), 3, "the default applies");
    }

    #[test]
    fn compat_alone_still_gets_a_loader_cache() {
        // Compute only, and the host has nothing but what the compat directory serves:
        // the plan is the compat libraries first in the cache, not "nothing to inject".
        let mut f = facts(
            vec![runtime(Some("12.4.127"), 12)],
            "470.256.02",
            Some(compat("550.163.01", false)),
        );
        f.host.gpu_libs.retain(|l| l.name() != "libnvidia-ml.so.1");
        f.container
            .env
            .insert("NVIDIA_DRIVER_CAPABILITIES".into(), "compute".into());
        let sel = select(&f, &GPU);
        assert!(sel.deps.is_empty());
        assert!(!sel.is_empty());
        let cache = build(&f, &sel).ld_cache.expect("a loader cache");
        assert_eq!(cache.entries[0].soname, "libcuda.so.1");
        assert_eq!(cache.entries[0].flags, 0x0303, "the host library's flags");
    }

    #[test]
    fn a_stub_found_before_the_compat_libraries_is_shadowing() {
        // The plan serves libcuda from the compat directory, but a leaked build-time
        // LD_LIBRARY_PATH finds the toolkit's stub first.
        let mut f = facts(
            vec![runtime(Some("12.4.127"), 12)],
            "470.256.02",
            Some(compat("550.163.01", false)),
        );
        f.container.ld_library_path_hits.insert(
            "libcuda.so.1".into(),
            "/usr/local/cuda/lib64/stubs/libcuda.so.1".into(),
        );
        let found = findings(&f, GPU);
        assert!(
            found.iter().any(|x| x.code == Code::LibraryShadowed
                && x.message
                    .contains("/usr/local/cuda/lib64/stubs/libcuda.so.1")),
            "{found:?}"
        );
    }

    #[test]
    fn only_the_drivers_sonames_of_a_compat_directory_go_first() {
        let mut c = compat("550.163.01", false);
        c.sonames.push("libmpi.so.40".into());
        let f = facts(vec![runtime(Some("12.4.127"), 12)], "470.256.02", Some(c));
        let sel = select(&f, &GPU);
        let first: Vec<&str> = sel
            .container_first
            .iter()
            .map(|(s, _)| s.as_str())
            .collect();
        assert_eq!(first, ["libcuda.so.1", "libnvidia-ptxjitcompiler.so.1"]);
    }
}
