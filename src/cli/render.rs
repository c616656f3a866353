//! Human-readable rendering of inventories: a heading line, then one aligned line per
//! fact, so that a person can read it top to bottom and `grep` can find a line.

use std::fmt::Write;

use crate::inventory::model::*;

const WIDTH: usize = 14;

pub fn host(inv: &Inventory) -> String {
    let mut out = format!("host {}\n", inv.root);
    if let Some(cpu) = &inv.cpu {
        let level = cpu.generic_level.as_deref().unwrap_or("-");
        line(
            &mut out,
            "cpu",
            format!(
                "{} {} ({}), generic level {level}",
                cpu.arch, cpu.microarchitecture, cpu.vendor
            ),
        );
        let check = if cpu.cross_check.agrees {
            "agrees".to_string()
        } else {
            format!("DISAGREES: {}", cpu.cross_check.notes.join("; "))
        };
        line(
            &mut out,
            "",
            format!(
                "{} features; cross-check with {}: {check}",
                cpu.features.len(),
                cpu.cross_check.source
            ),
        );
        let usable: Vec<&String> = cpu
            .usable_features
            .iter()
            .filter(|f| !cpu.features.contains(f))
            .collect();
        let masked: Vec<&String> = cpu
            .features
            .iter()
            .filter(|f| !cpu.usable_features.contains(f))
            .collect();
        if !usable.is_empty() || !masked.is_empty() {
            let list = |v: &[&String]| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
                }
            };
            line(
                &mut out,
                "",
                format!(
                    "verdicts use cpuid's features: beyond cpuinfo {}; not usable {}",
                    list(&usable),
                    list(&masked)
                ),
            );
        }
    }
    if let Some(k) = &inv.kernel {
        line(&mut out, "kernel", format!("{} {}", k.release, k.version));
    }
    common(&mut out, inv);
    out
}

pub fn container(inv: &Inventory) -> String {
    let mut out = format!("container {}\n", inv.root);
    common(&mut out, inv);
    let glibc = match &inv.glibc_required {
        Some(g) => format!("GLIBC_{} (by {})", g.version, abbreviate(&g.needed_by)),
        None => "-".into(),
    };
    line(&mut out, "needs glibc", glibc);
    microarch(&mut out, &inv.microarch);
    if let Some(e) = &inv.entrypoint {
        entrypoint(&mut out, e);
    }
    for (k, v) in &inv.labels {
        line(&mut out, "label", format!("{k}={v}"));
    }
    line(
        &mut out,
        "examined",
        format!(
            "{} files, {} ELF ({} scan)",
            inv.scan.files, inv.scan.elf_files, inv.scan.mode
        ),
    );
    findings(&mut out, &inv.findings);
    out
}

/// The sections hosts and containers share.
fn common(out: &mut String, inv: &Inventory) {
    line(
        out,
        "arch",
        inv.arch
            .clone()
            .unwrap_or_else(|| "unknown (no loader or libc found)".into()),
    );
    if let Some(os) = &inv.os_release {
        line(
            out,
            "os",
            os.pretty_name
                .clone()
                .or_else(|| os.id.clone())
                .unwrap_or_else(|| "-".into()),
        );
    }
    line(out, "libc", libc(inv.libc.as_ref()));
    mpi(out, &inv.mpi);
    gpu(out, &inv.gpu);
    let c = &inv.loader_cache;
    let cache = match &c.format {
        Some(f) => format!(
            "{} ({f} format), {} entries, {} in glibc-hwcaps",
            c.path, c.entries, c.hwcaps_entries
        ),
        None if c.present => format!("{} unreadable (see findings)", c.path),
        None => format!("{} absent", c.path),
    };
    line(out, "ld.so.cache", cache);
    if !c.conf_dirs.is_empty() {
        line(out, "ld.so.conf", c.conf_dirs.join(" "));
    }
}

fn libc(libc: Option<&Libc>) -> String {
    let Some(l) = libc else {
        return "none found (static or unknown)".into();
    };
    let family = match l.family {
        LibcFamily::Glibc => "glibc",
        LibcFamily::Musl => "musl",
    };
    let version = l.version.as_deref().unwrap_or("(version unknown)");
    let source = l
        .version_source
        .as_deref()
        .map(|s| format!(" [{s}]"))
        .unwrap_or_default();
    let loader = l
        .loader
        .as_deref()
        .map(|p| format!(", loader {p}"))
        .unwrap_or_default();
    format!("{family} {version}{source} {}{loader}", l.path)
}

fn mpi(out: &mut String, installs: &[MpiInstall]) {
    if installs.is_empty() {
        line(out, "mpi", "none".into());
    }
    for m in installs {
        let version = m.version.as_deref().unwrap_or("(version unknown)");
        let source = m
            .version_source
            .as_deref()
            .map(|s| format!(" [{s}]"))
            .unwrap_or_default();
        let device = m
            .device
            .as_deref()
            .map(|d| format!(", device {d}"))
            .unwrap_or_default();
        let abi = serde_json::to_value(m.abi)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        line(
            out,
            "mpi",
            format!(
                "{} {version}{source} ({abi} ABI{device}) {} -> {}",
                m.implementation, m.soname, m.real_path
            ),
        );
    }
}

fn gpu(out: &mut String, gpu: &Gpu) {
    let fact = |f: &Option<VersionFact>| {
        f.as_ref().map_or("none".to_string(), |f| {
            format!("{} ({})", f.version, f.source)
        })
    };
    line(out, "nvidia driver", fact(&gpu.nvidia_driver));
    if let Some(libs) = gpu
        .nvidia_libraries
        .as_ref()
        .filter(|l| Some(*l) != gpu.nvidia_driver.as_ref())
    {
        line(
            out,
            "",
            format!("libraries {} ({})", libs.version, libs.source),
        );
    }
    if !gpu.gpu_models.is_empty() {
        line(out, "", format!("gpus: {}", gpu.gpu_models.join(", ")));
    }
    for problem in &gpu.driver_problems {
        line(out, "", format!("unreadable: {problem}"));
    }
    if gpu.cuda_runtimes.is_empty() {
        line(out, "cuda runtime", "none".to_string());
    }
    for (i, r) in gpu.cuda_runtimes.iter().enumerate() {
        let version = r.version.clone().unwrap_or_else(|| {
            let major = r.major.map(|m| format!(" (major {m})")).unwrap_or_default();
            format!("version unknown{major}")
        });
        let library = r
            .library
            .as_deref()
            .filter(|l| *l != r.source)
            .map(|l| format!(", {l}"))
            .unwrap_or_default();
        let label = if i == 0 { "cuda runtime" } else { "" };
        line(
            out,
            label,
            format!("{version} [{}] ({}{library})", r.layout, r.source),
        );
    }
    if let Some(c) = &gpu.cuda_compat {
        let version = c.version.as_deref().unwrap_or("version unknown");
        let loaded = if c.on_ld_library_path {
            ", on LD_LIBRARY_PATH"
        } else {
            ""
        };
        line(
            out,
            "cuda compat",
            format!("libcuda {version} ({}{loaded})", c.dir),
        );
    }
    line(out, "rocm", fact(&gpu.rocm));
}

fn microarch(out: &mut String, m: &Microarch) {
    let level = m
        .level
        .map(|l| format!(" (x86-64 level {l})"))
        .unwrap_or_default();
    let needs = match (&m.required, m.status) {
        (_, TargetStatus::Unknown) => "unknown: no file records its target (declare it with the \
             io.archspec.cpu.target label, or build with -mneeded or -Wl,-z,x86-64-vN)"
            .to_string(),
        (Some(r), status) => format!("{r}{level} [{}]", status.as_str()),
        (None, status) => format!("baseline of the architecture [{}]", status.as_str()),
    };
    line(out, "needs cpu", needs);
    if !m.features.is_empty() {
        line(out, "", format!("features: {}", m.features.join(" ")));
    }
    for s in &m.signals {
        line(
            out,
            "",
            format!("{} from {} in {}", s.target, s.kind, s.source),
        );
    }
    for x in &m.mixed {
        let dispatch = x.dispatch.as_deref().map_or_else(
            || "no run-time CPU check shows in the file".to_string(),
            |d| format!("checks the CPU at run time: {d}"),
        );
        line(
            out,
            "mixed targets",
            format!(
                "{}: units built for {}; {} only if that code runs ({dispatch})",
                x.object,
                x.targets.join(", "),
                x.features.join(" ")
            ),
        );
    }
    if !m.unmarked.is_empty() && m.status != TargetStatus::Unknown {
        line(
            out,
            "no target",
            format!(
                "{} object(s) record none: {}",
                m.unmarked.len(),
                abbreviate(&m.unmarked)
            ),
        );
    }
}

/// One line for `inspect`: whether this machine's CPU has what the files require, and
/// whether it could run a higher x86-64 level than they record (information only: the
/// verdict is `check-bundle`'s).
pub fn on_this_cpu(m: &Microarch, cpu: &crate::inventory::cpu::HostCpu) -> String {
    let usable: std::collections::BTreeSet<String> = cpu.usable_features.iter().cloned().collect();
    let wanted: std::collections::BTreeSet<String> = m.features.iter().cloned().collect();
    let missing = crate::inventory::cpu::missing_features(&wanted, &usable);
    let mut says = if m.status == TargetStatus::Unknown {
        format!(
            "{}: the files record no requirement to check",
            cpu.microarchitecture
        )
    } else if missing.is_empty() {
        format!(
            "{} has every feature the files require",
            cpu.microarchitecture
        )
    } else {
        format!("{} lacks {}", cpu.microarchitecture, missing.join(", "))
    };
    if let Some((level, host_level)) = m.headroom(&usable) {
        says.push_str(&format!(
            "; it runs x86-64 level {host_level}, the files record level {level}: a build for it may run faster"
        ));
    }
    let mut out = String::new();
    line(&mut out, "on this cpu", says);
    out
}

fn entrypoint(out: &mut String, e: &Entrypoint) {
    let path = e.path.as_deref().unwrap_or("NOT FOUND");
    line(out, "entrypoint", format!("{} -> {path}", e.command));
    if let Some(i) = &e.interpreter {
        line(out, "", format!("script interpreter #!{i}"));
    }
    for lib in &e.libraries {
        let via = serde_json::to_value(lib.via)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        line(out, "", format!("{} => {} [{via}]", lib.soname, lib.path));
    }
    for m in &e.missing {
        line(
            out,
            "",
            format!("{} => NOT FOUND (needed by {})", m.soname, m.needed_by),
        );
    }
}

fn findings(out: &mut String, findings: &[FileFinding]) {
    for f in findings {
        line(out, "finding", format!("{}: {}", f.code, f.message));
    }
}

fn abbreviate(paths: &[String]) -> String {
    match paths {
        [] => "-".into(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    }
}

fn line(out: &mut String, label: &str, value: String) {
    let _ = writeln!(out, "  {label:<WIDTH$}{value}");
}
