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
    line(out, "cuda runtime", fact(&gpu.cuda_runtime));
    line(out, "rocm", fact(&gpu.rocm));
}

fn microarch(out: &mut String, m: &Microarch) {
    line(
        out,
        "needs cpu",
        m.required
            .clone()
            .unwrap_or_else(|| "baseline of the architecture".into()),
    );
    for s in &m.signals {
        line(
            out,
            "",
            format!("{} from {} in {}", s.target, s.kind, s.source),
        );
    }
    for c in &m.conflicts {
        line(out, "", format!("conflicting targets: {c}"));
    }
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
