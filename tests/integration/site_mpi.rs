//! Ground truth beyond Debian's packages: real third-party MPI builds (Intel MPI 2021.13.1
//! with its libfabric and providers, MPICH 5.0.2 and Open MPI 5.0.11 as upstream builds
//! that bundle libfabric, UCX, hwloc and PMIx beside themselves with `RUNPATH $ORIGIN`),
//! laid out on a host root the way a site lays them out (`tests/rigs/site-mpi.sh`): under
//! `/sw/<impl>/<version>`, named by the config's `prefixes`, by `LD_LIBRARY_PATH` (a
//! loaded module), or registered in the host's loader cache. Each is injected into the
//! six Debian MPI containers, and every verdict is checked by carrying the plan out for
//! real and running the container's own MPI program:
//!
//! - `compatible` must mean it ran and reported the host installation's version;
//! - `incompatible` must name the cause that a run shows: for `environment-required`, the
//!   same plan run without the variable fails; for an ABI family mismatch, a naive
//!   injection of the host's library fails; for `glibc-too-old`, the loader names a
//!   version the report names.

use std::path::{Path, PathBuf};

use crate::inject_pairs::{PROGRAM, loader_missing_version, run_with_plan};
use crate::util::{Judged, cached_rootfs, dpkg_version, is_root, scratch, upstream_version};

/// The containers: Debian's MPI packages, and MPICH wheels in a virtualenv whose program
/// finds them through its RUNPATH (`tests/rigs/site-mpi.sh`).
const CONTAINERS: &[Container] = &[
    Container::Debian("bullseye-mpich"),
    Container::Debian("bookworm-mpich"),
    Container::Debian("trixie-mpich"),
    Container::Debian("bullseye-openmpi"),
    Container::Debian("bookworm-openmpi"),
    Container::Debian("trixie-openmpi"),
    Container::Venv("venv-mpich"),
    Container::Venv("venv-mpi-abi"),
    Container::Venv("venv-mpi-abi0"),
];

#[derive(Clone, Copy)]
enum Container {
    /// A Debian rootfs (`tests/rigs/rootfs.sh`).
    Debian(&'static str),
    /// A virtualenv container (`tests/rigs/site-mpi.sh`).
    Venv(&'static str),
}

impl Container {
    fn name(self) -> &'static str {
        match self {
            Container::Debian(n) | Container::Venv(n) => n,
        }
    }
}

/// How the host's installation is made known to containerspec.
#[derive(Clone, Copy, PartialEq)]
enum Told {
    /// `[inject.mpi] prefixes` in the host's config file.
    ConfigPrefix,
    /// The caller's `LD_LIBRARY_PATH`, as `module load` sets it.
    LdLibraryPath,
    /// Registered in the host root's loader cache.
    LoaderCache,
}

/// Where a host root comes from.
#[derive(Clone, Copy, PartialEq)]
enum Root {
    /// A site host root (`tests/rigs/site-mpi.sh`).
    Site(&'static str),
    /// A Debian rootfs used as the host (`tests/rigs/rootfs.sh`); only for the virtualenv
    /// containers (`inject_pairs` runs the Debian containers on these).
    Debian(&'static str),
    /// The Debian sid root of the Apptainer rig (`tests/rigs/apptainer.sh`), whose MPICH
    /// 5 package ships the MPI standard ABI (`libmpi_abi.so.1`) beside `libmpich.so.12`.
    Sid,
}

struct Host {
    root: Root,
    /// The site prefix ("" for a distribution's MPI).
    prefix: &'static str,
    told: Told,
    /// What the program prints when it runs with the site's MPI (None: the version the
    /// host root's package database gives for the MPI chosen).
    reports: Option<&'static str>,
    /// The bundle passes the variable the plan asks for (as `podman run -e` would).
    with_env: bool,
}

impl Host {
    fn name(&self) -> &'static str {
        match self.root {
            Root::Site(n) | Root::Debian(n) => n,
            Root::Sid => "sid-mpich",
        }
    }
}

const INTEL: &str = "/sw/intel-mpi/2021.13.1";
const INTEL_REPORTS: Option<&str> = Some("Intel(R) MPI Library 2021.13 ");
const MPICH: &str = "/sw/mpich/5.0.2";
const MPICH_REPORTS: Option<&str> = Some("MPICH Version: 5.0.2 ");
const OPENMPI: &str = "/sw/openmpi/5.0.11";
const OPENMPI_REPORTS: Option<&str> = Some("Open MPI v5.0.11,");

const fn site(
    root: &'static str,
    prefix: &'static str,
    told: Told,
    reports: Option<&'static str>,
) -> Host {
    Host {
        root: Root::Site(root),
        prefix,
        told,
        reports,
        with_env: false,
    }
}

const fn distro(root: Root) -> Host {
    Host {
        root,
        prefix: "",
        told: Told::LoaderCache,
        reports: None,
        with_env: false,
    }
}

const HOSTS: &[Host] = &[
    Host {
        with_env: true,
        ..site("intel-mpi-module", INTEL, Told::ConfigPrefix, INTEL_REPORTS)
    },
    site("intel-mpi-module", INTEL, Told::ConfigPrefix, INTEL_REPORTS),
    Host {
        with_env: true,
        ..site(
            "intel-mpi-module",
            INTEL,
            Told::LdLibraryPath,
            INTEL_REPORTS,
        )
    },
    Host {
        with_env: true,
        ..site("intel-mpi-cached", INTEL, Told::LoaderCache, INTEL_REPORTS)
    },
    site("mpich-module", MPICH, Told::ConfigPrefix, MPICH_REPORTS),
    site("mpich-module", MPICH, Told::LdLibraryPath, MPICH_REPORTS),
    site("mpich-cached", MPICH, Told::LoaderCache, MPICH_REPORTS),
    site(
        "mpich501-module",
        "/sw/mpich/5.0.1",
        Told::ConfigPrefix,
        Some("MPICH Version: 5.0.1 "),
    ),
    site(
        "openmpi-module",
        OPENMPI,
        Told::ConfigPrefix,
        OPENMPI_REPORTS,
    ),
    site(
        "openmpi-cached",
        OPENMPI,
        Told::LoaderCache,
        OPENMPI_REPORTS,
    ),
    distro(Root::Sid),
    distro(Root::Debian("bullseye-mpich")),
    distro(Root::Debian("bookworm-mpich")),
    distro(Root::Debian("trixie-mpich")),
    distro(Root::Debian("bullseye-openmpi")),
    distro(Root::Debian("bookworm-openmpi")),
    distro(Root::Debian("trixie-openmpi")),
];

/// The directory of site-mpi.sh's cache (`hosts/`, `containers/`), or None (after saying
/// so; a failure in CI) when it has not been built.
fn site_cache() -> Option<PathBuf> {
    let base = crate::util::rootfs_cache().parent()?.join("site-mpi");
    let hint = "site MPI host roots and containers not built: run tests/rigs/site-mpi.sh";
    // The last host root and the last container it builds.
    crate::util::built(base.join("hosts/openmpi-cached"), hint)?;
    crate::util::built(base.join("containers/venv-mpi-abi0"), hint)?;
    Some(base)
}

/// The Apptainer rig's sid root, or None (after saying so; a failure in CI).
fn sid_root() -> Option<PathBuf> {
    crate::util::built(
        crate::util::rootfs_cache()
            .parent()?
            .join("apptainer/sid-root"),
        "the sid root is not built: run tests/rigs/apptainer.sh build",
    )
}

/// What the program prints with the distribution's MPI `chosen` (as the report names it)
/// in `root`, from its package database.
fn distro_reports(pair: &str, root: &Path, chosen: &str) -> String {
    assert!(
        chosen.contains("/usr/lib/"),
        "{pair}: judged {chosen:?}, not a distribution's MPI"
    );
    if chosen.starts_with("Open MPI") {
        let pkg = ["libopenmpi40", "libopenmpi3"]
            .into_iter()
            .find(|p| dpkg_version(root, p).is_some())
            .unwrap();
        let v = upstream_version(&dpkg_version(root, pkg).unwrap());
        format!("Open MPI v{v},")
    } else {
        let v = upstream_version(&dpkg_version(root, "libmpich12").unwrap());
        format!("MPICH Version: {v} ")
    }
}

/// How the report describes the MPI whose `MPI_Get_library_version` begins with
/// `printed`: "MPICH Version: 5.0.2 " -> "MPICH 5.0.2 (", "Open MPI v5.0.11," ->
/// "Open MPI 5.0.11 (", "Intel(R) MPI Library 2021.13 " -> "Intel MPI 2021.13 (".
fn described_as(printed: &str) -> String {
    let version = |s: &str| s.trim().trim_end_matches(',').to_string();
    if let Some(v) = printed.strip_prefix("MPICH Version:") {
        format!("MPICH {} (", version(v))
    } else if let Some(v) = printed.strip_prefix("Open MPI v") {
        format!("Open MPI {} (", version(v))
    } else if let Some(v) = printed.strip_prefix("Intel(R) MPI Library ") {
        format!("Intel MPI {} (", version(v))
    } else {
        panic!("no description for {printed:?}")
    }
}

/// What the container's program prints with the container's own MPI.
fn own_reports(c: Container, root: &Path) -> String {
    match c {
        Container::Venv("venv-mpi-abi0") => "MPICH Version: 5.0.1 ".to_string(),
        Container::Venv(_) => "MPICH Version: 5.0.2 ".to_string(),
        Container::Debian(n) if n.ends_with("openmpi") => {
            distro_reports(n, root, "Open MPI (/usr/lib/)")
        }
        Container::Debian(n) => distro_reports(n, root, "MPICH (/usr/lib/)"),
    }
}

/// Whether the program's output reports `wanted` (white space folded).
fn reports(stdout: &str, wanted: &str) -> bool {
    // A trailing space in `wanted` ends the version: "2021.13 " never matches "2021.131".
    let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    stdout.lines().any(|l| {
        let line = fold(l);
        if wanted.ends_with(' ') {
            format!("{line} ").starts_with(wanted)
        } else {
            line.starts_with(wanted)
        }
    })
}

struct Outcome {
    pair: String,
    verdict: String,
    codes: Vec<String>,
    ran: String,
}

#[test]
fn site_mpi_verdicts_match_what_really_happens() {
    if !is_root() {
        crate::skip!("needs root (mount namespaces, overlay, chroot)");
    }
    let Some(site) = site_cache() else {
        return;
    };
    let Some(sid) = sid_root() else {
        return;
    };
    let mut containers = Vec::new();
    for c in CONTAINERS {
        match c {
            Container::Debian(n) => match cached_rootfs(n) {
                Some(p) => containers.push((*c, p)),
                None => return,
            },
            Container::Venv(n) => containers.push((*c, site.join("containers").join(n))),
        }
    }
    let base = scratch("site-mpi");
    let mut outcomes = Vec::new();
    for (hi, host) in HOSTS.iter().enumerate() {
        let hroot = match host.root {
            Root::Site(n) => site.join("hosts").join(n),
            Root::Debian(n) => match cached_rootfs(n) {
                Some(p) => p,
                None => return,
            },
            Root::Sid => sid.clone(),
        };
        for (c, croot) in &containers {
            if matches!(host.root, Root::Debian(_)) && matches!(c, Container::Debian(_)) {
                continue; // inject_pairs covers these
            }
            let told = match host.told {
                Told::ConfigPrefix => "config prefix",
                Told::LdLibraryPath => "LD_LIBRARY_PATH",
                Told::LoaderCache => "loader cache",
            };
            let env_note = if !host.with_env && host.prefix == INTEL {
                ", no FI_PROVIDER_PATH"
            } else {
                ""
            };
            let pair = format!("{} on {} ({told}{env_note})", c.name(), host.name());
            let dir = base.join(format!("{hi}-{}", c.name()));
            let own = own_reports(*c, croot);
            let outcome = judge_and_run(&pair, &dir, croot, &hroot, host, &own);
            outcomes.push(outcome);
        }
    }
    eprintln!("\nverdicts with site MPI installations (container on host):");
    for o in &outcomes {
        eprintln!(
            "  {:66} {:13} {:28} {}",
            o.pair,
            o.verdict,
            o.codes.join(","),
            o.ran
        );
    }
    let compatible = outcomes
        .iter()
        .filter(|o| o.verdict == "compatible")
        .count();
    eprintln!(
        "{} pairs: {compatible} compatible and ran with the host's MPI, {} incompatible for the reason a run shows, 0 false compatible",
        outcomes.len(),
        outcomes.len() - compatible
    );
    // The canonical case of the ABI initiative: Intel MPI into MPICH applications, and
    // the MPICH and Open MPI builds into their own families, whatever told us where; the
    // standard ABI across builds (the wheel's program on sid's MPICH package).
    let must_run = |p: &str| {
        let family = p.contains("-mpich on ") && !p.contains("abi");
        (family && p.contains(" on intel") && !p.contains("FI_PROVIDER_PATH"))
            || (family && p.contains(" on mpich-"))
            || (p.contains("-openmpi on openmpi"))
            || p.starts_with("venv-mpi-abi on mpich-")
            || p.starts_with("venv-mpi-abi on sid-mpich")
            || p.starts_with("venv-mpi-abi0 on mpich501")
            || p.starts_with("venv-mpich on bookworm-mpich")
    };
    for o in &outcomes {
        if must_run(&o.pair) {
            assert_eq!(o.verdict, "compatible", "{}: {:?}", o.pair, o.codes);
        }
    }
}

fn judge_and_run(
    pair: &str,
    dir: &Path,
    croot: &Path,
    hroot: &Path,
    host: &Host,
    own: &str,
) -> Outcome {
    std::fs::create_dir_all(dir).unwrap();
    let mut env = vec!["PATH=/usr/bin:/bin".to_string()];
    let provider_path = format!("FI_PROVIDER_PATH={INTEL}/lib/libfabric/prov");
    if host.with_env && host.prefix == INTEL {
        env.push(provider_path.clone());
    }
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": croot},
        "process": {"cwd": "/", "args": [PROGRAM], "env": env, "user": {"uid": 0, "gid": 0}},
        "annotations": {"org.supercontainers.inject": "mpi"}
    });
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let cache = dir.join("ld.so.cache");
    let (hroot_s, bundle_s, cache_s) = (
        hroot.to_str().unwrap(),
        bundle.to_str().unwrap(),
        cache.to_str().unwrap(),
    );
    let conf = hroot.join("etc/containerspec/config.toml");
    let empty = dir.join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let conf_arg = if host.told == Told::ConfigPrefix {
        conf
    } else {
        empty
    };
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_containerspec"));
    cmd.args([
        "check-bundle",
        bundle_s,
        "--host-root",
        hroot_s,
        "--config",
        conf_arg.to_str().unwrap(),
        "--no-cache",
        "--json",
        "--emit-ld-cache",
        cache_s,
    ]);
    cmd.env_remove("LD_LIBRARY_PATH");
    if host.told == Told::LdLibraryPath {
        // What `module load` puts there (paths on the host, read inside the host root).
        let lib = format!("{}/lib", host.prefix);
        let value = if host.prefix == INTEL {
            format!("{lib}:{lib}/libfabric")
        } else {
            lib
        };
        cmd.env("LD_LIBRARY_PATH", value);
    }
    let out = cmd.output().unwrap();
    let Judged {
        report,
        verdict,
        errors,
        codes,
        mounts,
        env: plan_env,
        has_cache,
    } = Judged::read(pair, &out);
    let chosen = report["host_mpi"]["chosen"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let work = dir.join("run");
    let bundle_env: Vec<String> = env
        .iter()
        .filter(|e| !e.starts_with("PATH="))
        .cloned()
        .collect();
    // The plan carried out, with the container's environment `env`.
    let carry_out = |work: &Path, env: &[String]| {
        run_with_plan(
            work,
            croot,
            &mounts,
            has_cache.then_some(cache.as_path()),
            env,
        )
    };
    let ran = if verdict == "compatible" {
        // The site's installation, or the distribution's MPI that the host root also has
        // (whose version its package database gives).
        let wanted = match host.reports {
            Some(r) if !host.prefix.is_empty() && chosen.contains(host.prefix) => r.to_string(),
            _ => distro_reports(pair, hroot, &chosen),
        };
        let run = carry_out(&work, &bundle_env);
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success() && reports(&stdout, &wanted),
            "{pair}: called compatible, but the program {} (wanted {wanted:?}):\n{stdout}\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
        // The report names the version the library itself prints.
        let named = described_as(&wanted);
        assert!(
            chosen.starts_with(&named),
            "{pair}: the program printed {wanted:?}; the report says {chosen:?}"
        );
        format!("ran, reported {}", wanted.trim_end())
    } else {
        match codes.first().map(String::as_str).unwrap_or_default() {
            "environment-required" => {
                // The same plan without the variable fails; with it, it runs.
                let run = carry_out(&work, &bundle_env);
                assert!(
                    !run.status.success(),
                    "{pair}: called incompatible (environment), but the program ran"
                );
                let with = carry_out(&dir.join("run-env"), &plan_env);
                assert!(
                    with.status.success()
                        && reports(
                            &String::from_utf8_lossy(&with.stdout),
                            host.reports.unwrap_or("?")
                        ),
                    "{pair}: with {plan_env:?} the program still fails: {}",
                    String::from_utf8_lossy(&with.stderr)
                );
                format!(
                    "fails ({}); with {} it runs",
                    run.status,
                    plan_env.join(" ")
                )
            }
            "mpi-abi-family-mismatch" => {
                let f = &errors[0];
                let host_lib = format!("{}{}", hroot.display(), f["objects"][1].as_str().unwrap());
                let target = f["objects"][0].as_str().unwrap().to_string();
                let run = run_with_plan(
                    &work,
                    croot,
                    &[(host_lib, target, "file".into())],
                    None,
                    &bundle_env,
                );
                assert!(
                    !run.status.success(),
                    "{pair}: called an ABI mismatch, but a naive injection ran"
                );
                format!("naive injection fails ({})", run.status)
            }
            "mpi-standard-abi-missing" => {
                // Every MPI library of the host installations' directories (`libmpi*`)
                // first on LD_LIBRARY_PATH: the loader still finds no library of the
                // container's soname there, and the program runs on its own MPI.
                let mut dirs: Vec<String> = Vec::new();
                let seen = std::iter::once(&report["host_mpi"]["chosen"])
                    .chain(report["host_mpi"]["others"].as_array().unwrap());
                for d in seen {
                    let s = d.as_str().unwrap();
                    let path = s.split(" at ").nth(1).unwrap().split(" (").next().unwrap();
                    let dir = Path::new(path).parent().unwrap().display().to_string();
                    if !dirs.contains(&dir) {
                        dirs.push(dir);
                    }
                }
                let mut mounts: Vec<(String, String, String)> = Vec::new();
                for d in &dirs {
                    let on_host = format!("{}{d}", hroot.display());
                    for e in std::fs::read_dir(&on_host).unwrap() {
                        let name = e.unwrap().file_name().to_string_lossy().into_owned();
                        let source = format!("{on_host}/{name}");
                        if name.starts_with("libmpi")
                            && name.contains(".so.")
                            && Path::new(&source).is_file()
                            && !mounts.iter().any(|m| m.1.ends_with(&format!("/{name}")))
                        {
                            mounts.push((source, format!("/run/host-mpi/{name}"), "file".into()));
                        }
                    }
                }
                let path = "/run/host-mpi".to_string();
                let mut env = bundle_env.clone();
                env.push(format!("LD_LIBRARY_PATH={path}"));
                let run = run_with_plan(&work, croot, &mounts, None, &env);
                let stdout = String::from_utf8_lossy(&run.stdout);
                assert!(
                    run.status.success() && reports(&stdout, own),
                    "{pair}: called {}, but with the host's MPI libraries ({mounts:?}) on LD_LIBRARY_PATH the program did not run on its own MPI ({own:?}): {}\n{stdout}\n{}",
                    codes[0],
                    run.status,
                    String::from_utf8_lossy(&run.stderr)
                );
                format!(
                    "host MPI unused: with its {} libmpi* files on LD_LIBRARY_PATH the program still reports {}",
                    mounts.len(),
                    own.trim_end()
                )
            }
            "glibc-too-old" => {
                let run = carry_out(&work, &bundle_env);
                let stderr = String::from_utf8_lossy(&run.stderr);
                assert!(
                    !run.status.success(),
                    "{pair}: called incompatible (glibc) but the program ran"
                );
                let missing = loader_missing_version(&stderr);
                let named: Vec<&str> = errors
                    .iter()
                    .flat_map(|f| {
                        f["versions"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter_map(|v| v.as_str())
                    })
                    .collect();
                assert!(
                    named.contains(&missing.as_str()),
                    "{pair}: the loader says {missing:?}; the report names {named:?}"
                );
                format!("fails: {missing} not found")
            }
            other => panic!(
                "{pair}: refused for {other} ({:?}), which no run here explains",
                errors
            ),
        }
    };
    Outcome {
        pair: pair.to_string(),
        verdict,
        codes,
        ran,
    }
}

/// The host-facts cache never serves a verdict about a library replaced in place (same
/// directory, same inode: `cp` over it), which no watched directory's time shows.
#[test]
fn a_library_replaced_in_place_is_read_again() {
    if !is_root() {
        crate::skip!("needs root (the host-facts cache lives in /run/containerspec)");
    }
    let Some(site) = site_cache() else {
        return;
    };
    let hosts_dir = site.join("hosts");
    let Some(croot) = cached_rootfs("bookworm-mpich") else {
        return;
    };
    let dir = scratch("site-mpi-replaced");
    let host = dir.join("host");
    let lib = host.join("sw/mpi/lib");
    std::fs::create_dir_all(&lib).unwrap();
    let mpich = hosts_dir.join("mpich-module/sw/mpich/5.0.2/lib");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", mpich.display()))
        .arg(&lib)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        dir.join("config.toml"),
        "[inject.mpi]\nprefixes = [\"/sw/mpi\"]\n",
    )
    .unwrap();
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": croot},
        "process": {"cwd": "/", "args": [PROGRAM], "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
        "annotations": {"org.supercontainers.inject": "mpi"}
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let chosen = || {
        let out = crate::util::json(&[
            "check-bundle",
            bundle.to_str().unwrap(),
            "--host-root",
            host.to_str().unwrap(),
            "--config",
            dir.join("config.toml").to_str().unwrap(),
        ]);
        out["host_mpi"]["chosen"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let before = chosen();
    assert!(before.starts_with("MPICH 5.0.2"), "{before}");
    assert_eq!(chosen(), before, "the cached facts give the same verdict");
    // Replace the library's contents in place with Intel MPI's (same path and inode).
    let intel = hosts_dir.join("intel-mpi-module/sw/intel-mpi/2021.13.1/lib/libmpi.so.12");
    let target = lib.join("libmpi.so.12");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&target).unwrap());
    std::fs::write(&target, std::fs::read(&intel).unwrap()).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&target).unwrap()),
        inode
    );
    let after = chosen();
    assert!(
        after.starts_with("Intel MPI 2021.13"),
        "stale host facts served: {after}"
    );
}

/// `inspect` names the MPI the entrypoint loads through its RUNPATH from a virtualenv
/// (which no loader cache lists) first, with the implementation that built it, also for
/// the standard ABI.
#[test]
fn inspect_finds_the_mpi_a_virtualenv_program_loads() {
    let Some(site) = site_cache() else {
        return;
    };
    let dir = scratch("site-mpi-inspect");
    for (name, soname, version) in [
        ("venv-mpich", "libmpi.so.12", "5.0.2"),
        ("venv-mpi-abi", "libmpi_abi.so.1", "5.0.2"),
        ("venv-mpi-abi0", "libmpi_abi.so.0", "5.0.1"),
    ] {
        let bundle = dir.join(name);
        std::fs::create_dir_all(&bundle).unwrap();
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": site.join("containers").join(name)},
            "process": {"cwd": "/", "args": [PROGRAM], "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
        });
        std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
        let out = crate::util::json(&["inspect", bundle.to_str().unwrap()]);
        let first = &out["mpi"][0];
        assert_eq!(
            first["path"],
            format!("/opt/venv/lib/{soname}"),
            "{name}: {out}"
        );
        assert_eq!(first["soname"], soname, "{name}");
        assert_eq!(first["implementation"], "MPICH", "{name}");
        assert_eq!(first["version"], version, "{name}");
        // The Debian Open MPI the image also has is still listed, after it.
        assert!(
            out["mpi"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["implementation"] == "Open MPI"),
            "{name}: {out}"
        );
    }
}

/// `host` lists every installation check-bundle would consider, most preferred first,
/// each with where it was found.
#[test]
fn host_lists_every_installation_and_where_it_came_from() {
    let Some(site) = site_cache() else {
        return;
    };
    let Some(sid) = sid_root() else {
        return;
    };
    let list = |root: &Path, config: Option<&Path>, ld_library_path: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_containerspec"));
        cmd.args(["host", "--json", "--root", root.to_str().unwrap()]);
        let empty = scratch("site-mpi-host-config").join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        cmd.arg("--config").arg(config.unwrap_or(&empty));
        cmd.env_remove("LD_LIBRARY_PATH");
        if let Some(p) = ld_library_path {
            cmd.env("LD_LIBRARY_PATH", p);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["mpi_installations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{} {} {} {} {}",
                    m["implementation"].as_str().unwrap(),
                    m["version"].as_str().unwrap_or("?"),
                    m["soname"].as_str().unwrap(),
                    m["path"].as_str().unwrap(),
                    m["origin"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    let intel = site.join("hosts/intel-mpi-module");
    assert_eq!(
        list(
            &intel,
            Some(&intel.join("etc/containerspec/config.toml")),
            None
        ),
        [
            "Intel MPI 2021.13 libmpi.so.12 /sw/intel-mpi/2021.13.1/lib/libmpi.so.12 config-prefix",
            "MPICH 4.0.2 libmpich.so.12 /usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2 loader-cache",
        ]
    );
    // A module's installation, with its standard-ABI library beside its MPICH-ABI one.
    let mpich = site.join("hosts/mpich-module");
    assert_eq!(
        list(&mpich, None, Some("/sw/mpich/5.0.2/lib")),
        [
            "MPICH 5.0.2 libmpi.so.12 /sw/mpich/5.0.2/lib/libmpi.so.12 ld-library-path",
            "MPICH 5.0.2 libmpi_abi.so.1 /sw/mpich/5.0.2/lib/libmpi_abi.so.1 ld-library-path",
            "MPICH 4.0.2 libmpich.so.12 /usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2 loader-cache",
        ]
    );
    // Without the module loaded, only the distribution's is there.
    assert_eq!(
        list(&mpich, None, None),
        ["MPICH 4.0.2 libmpich.so.12 /usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2 loader-cache"]
    );
    // Open MPI's release as its library prints it (v5.0.11), not the tag its tarball
    // came from (v5.0.11rc1).
    let openmpi = site.join("hosts/openmpi-module");
    assert_eq!(
        list(
            &openmpi,
            Some(&openmpi.join("etc/containerspec/config.toml")),
            None
        )[0],
        "Open MPI 5.0.11 libmpi.so.40 /sw/openmpi/5.0.11/lib/libmpi.so.40 config-prefix"
    );
    let sid_list = list(&sid, None, None);
    assert_eq!(sid_list.len(), 2, "{sid_list:?}");
    assert!(
        sid_list[0].starts_with("MPICH 5.0.2 libmpich.so.12 /usr/lib/"),
        "{sid_list:?}"
    );
    assert!(
        sid_list[1].starts_with("MPICH 5.0.2 libmpi_abi.so.1 /usr/lib/x86_64-linux-gnu/libmpi_abi")
            && sid_list[1].ends_with(" loader-cache"),
        "{sid_list:?}"
    );
}

/// A config that names what is not an MPI installation is an error naming the path (for
/// `check-bundle` and `host` alike); a plugin directory that cannot be listed is a
/// finding naming it, never a panic or silence.
#[test]
fn bad_installations_are_named() {
    let Some(site) = site_cache() else {
        return;
    };
    let Some(container) = cached_rootfs("bookworm-mpich") else {
        return;
    };
    let dir = scratch("site-mpi-bad");
    let host = dir.join("host");
    std::fs::create_dir_all(host.join("sw/empty/lib")).unwrap();
    std::fs::write(host.join("sw/empty/lib/README"), "no MPI here\n").unwrap();
    std::fs::create_dir_all(host.join("sw/text/lib")).unwrap();
    std::fs::write(host.join("sw/text/lib/libmpi.so.12"), "not ELF\n").unwrap();
    // A real ELF library that is not an MPI (the container root's zlib).
    std::fs::copy(
        container.join("lib/x86_64-linux-gnu/libz.so.1"),
        host.join("sw/text/lib/libz.so.1"),
    )
    .unwrap();
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": container},
        "process": {"cwd": "/", "args": [PROGRAM], "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}},
        "annotations": {"org.supercontainers.inject": "mpi"}
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let cases = [
        (
            "[inject.mpi]\nprefixes = [\"/sw/empty\"]\n",
            "sw/empty: named in the config's inject.mpi.prefixes: no MPI library",
        ),
        (
            "[inject.mpi]\nprefixes = [\"/sw/text\"]\n",
            "sw/text: named in the config's inject.mpi.prefixes: no MPI library",
        ),
        (
            "[inject.mpi]\nlibraries = [\"/sw/text/lib/libmpi.so.12\"]\n",
            "sw/text/lib/libmpi.so.12: listed in the config's inject.mpi.libraries: /sw/text/lib/libmpi.so.12: not an ELF file",
        ),
        (
            "[inject.mpi]\nlibraries = [\"/sw/text/lib/libz.so.1\"]\n",
            "sw/text/lib/libz.so.1: listed in the config's inject.mpi.libraries: none of the listed libraries is an MPI library",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let conf = dir.join(format!("config-{i}.toml"));
        std::fs::write(&conf, text).unwrap();
        let (h, c, b) = (
            host.to_str().unwrap(),
            conf.to_str().unwrap(),
            bundle.to_str().unwrap(),
        );
        let out = crate::util::containerspec(&[
            "check-bundle",
            b,
            "--host-root",
            h,
            "--config",
            c,
            "--no-cache",
        ]);
        crate::util::assert_error(&out, needle);
        let out = crate::util::containerspec(&["host", "--root", h, "--config", c]);
        crate::util::assert_error(&out, needle);
    }
    // The providers directory of the site's libfabric, unreadable to the caller.
    if !is_root() {
        crate::skip!("needs root (to copy a site root and read it as another user)");
    }
    let unreadable = dir.join("unreadable");
    let status = std::process::Command::new("cp")
        .arg("-al")
        .arg(site.join("hosts/mpich-module"))
        .arg(&unreadable)
        .status()
        .unwrap();
    assert!(status.success());
    use std::os::unix::fs::PermissionsExt;
    let providers = unreadable.join("sw/mpich/5.0.2/lib/mpich/libfabric");
    std::fs::set_permissions(&providers, std::fs::Permissions::from_mode(0o000)).unwrap();
    for d in [&dir, &bundle] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_containerspec"))
        .args(["check-bundle", bundle.to_str().unwrap(), "--host-root"])
        .arg(&unreadable)
        .arg("--config")
        .arg(unreadable.join("etc/containerspec/config.toml"))
        .args(["--no-cache", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {stderr}");
    });
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "plugin-unverified")
        .unwrap_or_else(|| panic!("no plugin-unverified finding: {report}"));
    assert_eq!(finding["objects"][0], "/sw/mpich/5.0.2/lib/mpich/libfabric");
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{finding}"
    );
    // No provider path is made up from a sibling directory of other plugins.
    assert!(
        !report["plan"]["env"].to_string().contains("mpich/ucx"),
        "{}",
        report["plan"]["env"]
    );
}

/// One container's label must not steer the next one's verdict: on a host with two MPI
/// families (MPICH and Open MPI under site prefixes, one host root), containers that
/// choose only by their `org.supercontainers.mpi` label get the family they ask for,
/// in turn, while the host facts come from the cache after the first start.
#[test]
fn a_label_does_not_steer_the_next_containers_host_facts() {
    if !crate::util::root_or_skip("mount namespaces, overlay") {
        return;
    }
    let Some(cache) = site_cache() else {
        return;
    };
    let work = crate::util::scratch("two-families");
    let host = work.join("host");
    let config = work.join("config.toml");
    std::fs::write(
        &config,
        format!("[inject.mpi]\nprefixes = [{MPICH:?}, {OPENMPI:?}]\n"),
    )
    .unwrap();
    // A container with no MPI of its own: only its label can choose.
    let root = crate::bad_input::mini_root("two-families-container");
    let mut script = format!(
        "set -e\nmkdir -p {h} {w}/upper {w}/work\n\
         mount -t overlay overlay -o lowerdir={a}:{b},upperdir={w}/upper,workdir={w}/work {h}\nset +e\n",
        h = host.display(),
        w = work.display(),
        a = cache.join("hosts/mpich-module").display(),
        b = cache.join("hosts/openmpi-module").display(),
    );
    let order = ["openmpi", "mpich", "openmpi", "mpich"];
    for (i, label) in order.iter().enumerate() {
        let bundle = work.join(format!("bundle-{i}"));
        std::fs::create_dir_all(&bundle).unwrap();
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": root},
            "process": {"cwd": "/", "args": ["/bin/none"], "user": {"uid": 0, "gid": 0}},
            "annotations": {"org.supercontainers.inject": "mpi", "org.supercontainers.mpi": label}
        });
        std::fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
        script += &format!(
            "{cs} -vv check-bundle {b} --host-root {h} --config {c} --json > {w}/{i}.json 2> {w}/{i}.err\n",
            cs = env!("CARGO_BIN_EXE_containerspec"),
            b = bundle.display(),
            h = host.display(),
            c = config.display(),
            w = work.display(),
        );
    }
    // The verdicts themselves are refusals (the container has no MPI to replace): the
    // script's own status says only whether the rig worked.
    script += "exit 0\n";
    crate::util::in_private_mount_namespace(&script);
    for (i, label) in order.iter().enumerate() {
        let text = std::fs::read_to_string(work.join(format!("{i}.json"))).unwrap();
        let log = std::fs::read_to_string(work.join(format!("{i}.err"))).unwrap();
        let report: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{i}: {e}: {text} {log}"));
        let chosen = report["host_mpi"]["chosen"].as_str().unwrap_or_default();
        let family = if *label == "openmpi" {
            "Open MPI"
        } else {
            "MPICH"
        };
        assert!(
            chosen.starts_with(family),
            "start {i} ({label}): {chosen}; {}",
            report["host_mpi"]
        );
        assert!(
            report["host_mpi"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("label asks for this family")),
            "start {i}: {}",
            report["host_mpi"]
        );
        // After the first start, the host facts come from the cache.
        assert_eq!(
            log.contains("host facts from the cache"),
            i > 0,
            "start {i} ({label}): {log}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
