//! `containerspec cdi generate|validate`: Container Device Interface specs from the host's
//! verified facts, and checks of any vendor's spec against a host and an image.
//!
//! A generated device carries containerspec's own hook (`createContainer`, with the
//! device's `--inject`): asking a runtime for the device is asking for the judged,
//! verified injection, and an incompatible container is refused with the diagnosis.
//! Device nodes, which only the runtime can allow (cgroup rules), are in the spec.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::CliError;
use crate::config::Config;
use crate::input::cdi::{self, ContainerEdits, Device, DeviceNode, Hook, Spec};
use crate::input::rootfs::RootFs;
use crate::input::target::Target;
use crate::inventory::gather::{Request, gather, glibc_needed};
use crate::inventory::object::Object;
use crate::inventory::version::Version;

/// The vendor of the kinds containerspec writes: `containerspec.io/mpi`, `containerspec.io/gpu`.
pub const VENDOR: &str = "containerspec.io";

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  containerspec cdi generate --inject mpi,gpu\n  \
podman run --device containerspec.io/mpi=host IMAGE ./app\n  \
containerspec cdi validate /etc/cdi/nvidia.yaml.json --image ./bundle\n\n\
The runtime reads specs from /etc/cdi and /var/run/cdi. Apptainer 1.5 takes CDI devices \
(--device) but does not run CDI hooks: there the device nodes and mounts apply, the check does \
not; use `containerspec apptainer exec` for the checked path."
)]
pub struct CdiArgs {
    #[command(subcommand)]
    pub command: CdiCommand,
}

#[derive(Debug, Subcommand)]
pub enum CdiCommand {
    /// Write CDI specs for this host's MPI installation and GPU driver, each device
    /// carrying containerspec's hook, which judges the container and injects
    Generate(GenerateArgs),
    /// Check CDI specs (containerspec's or a vendor's) against the host and an image
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The kinds to write: mpi, gpu, or mpi,gpu
    #[arg(long, value_name = "LIST", default_value = "mpi,gpu")]
    pub inject: String,
    /// Where to write `containerspec-<kind>.json` (a CDI spec directory)
    #[arg(long, value_name = "DIR", default_value = "/etc/cdi")]
    pub output: PathBuf,
    /// Read this directory as the host's `/` (the spec still names host paths)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,
    /// The config file the hook is to use (passed to it as --config)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The containerspec binary the hook runs (default: this one)
    #[arg(long, value_name = "PATH")]
    pub hook_path: Option<PathBuf>,
    /// Print the specs as JSON instead of writing them
    #[arg(long)]
    pub stdout: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// CDI spec files (JSON or YAML)
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<PathBuf>,
    /// Check the spec's host files under this directory instead of `/`
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,
    /// An image (rootfs, bundle, SIF) the injected libraries must load in: each mounted
    /// library's glibc needs are checked against the glibc it ships
    #[arg(long, value_name = "TARGET")]
    pub image: Option<PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &CdiArgs) -> Result<u8, CliError> {
    match &args.command {
        CdiCommand::Generate(a) => generate(a),
        CdiCommand::Validate(a) => validate(a),
    }
}

fn generate(args: &GenerateArgs) -> Result<u8, CliError> {
    let inject = crate::engine::request::Inject::parse(&args.inject, "--inject")
        .map_err(|e| CliError::Action(e.to_string()))?;
    if !inject.any() {
        return Err(CliError::Action("--inject: nothing to generate".into()));
    }
    let root = RootFs::open(&args.host_root)?;
    let hook_path = match &args.hook_path {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let cpu = crate::inventory::hostcache::host_cpu_cached(true);
    let inventory = gather(
        &root,
        &Request {
            hwcaps: cpu.hwcaps(),
            ..Default::default()
        },
    );
    let mut specs = Vec::new();
    // What each spec stands for, said when it is written (annotations would ask for a
    // newer cdiVersion than Debian 12's podman reads).
    let mut notes = Vec::new();
    if inject.mpi {
        let root_given = (args.host_root != Path::new("/")).then_some(args.host_root.as_path());
        let config = Config::load_for(args.config.as_deref(), root_given)?;
        let found = super::host::installations(&root, &config, &inventory.mpi, cpu.hwcaps())?;
        let Some(first) = found.first() else {
            return Err(CliError::Action(format!(
                "{}: no MPI installation found (the loader cache, the config's inject.mpi, LD_LIBRARY_PATH): no mpi spec to write",
                args.host_root.display()
            )));
        };
        notes.push(format!("mpi: {}", first.describe()));
        specs.push(Spec {
            cdi_version: cdi::GENERATED_VERSION.into(),
            kind: format!("{VENDOR}/mpi"),
            annotations: BTreeMap::new(),
            devices: vec![Device {
                name: "host".into(),
                annotations: BTreeMap::new(),
                container_edits: ContainerEdits {
                    hooks: hooks(&hook_path, "mpi", args.config.as_deref()),
                    ..Default::default()
                },
            }],
            container_edits: ContainerEdits::default(),
            extra: BTreeMap::new(),
        });
    }
    if inject.gpu {
        let spec = gpu_spec(&root, &args.host_root, &inventory.gpu, &hook_path, args)?;
        if let Some(d) = inventory.gpu.nvidia_libraries.as_ref() {
            notes.push(format!("gpu: driver {} ({})", d.version, d.source));
        }
        specs.push(spec);
    }
    for spec in &specs {
        cdi::check(spec).map_err(|(field, message)| {
            CliError::Action(format!(
                "the generated {} spec: {field}: {message}",
                spec.kind
            ))
        })?;
    }
    if args.stdout {
        super::print_json(&specs)?;
        return Ok(0);
    }
    std::fs::create_dir_all(&args.output)?;
    let mut text = String::new();
    for note in &notes {
        text.push_str(&format!("{note}\n"));
    }
    for spec in &specs {
        let class = spec.kind.rsplit('/').next().unwrap_or("device");
        let path = args.output.join(format!("containerspec-{class}.json"));
        // A runtime reading the directory meanwhile sees the old spec or the new one.
        crate::store::write_file(
            &path,
            &serde_json::to_vec_pretty(spec).map_err(std::io::Error::other)?,
            0o644,
        )?;
        let devices: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
        text.push_str(&format!(
            "wrote {} ({}: {})\n  use: podman run --device {}={} ...\n",
            path.display(),
            spec.kind,
            devices.join(", "),
            spec.kind,
            devices.first().copied().unwrap_or("host")
        ));
    }
    super::print_text(&text)?;
    Ok(0)
}

/// The hooks every generated device carries: the check and injection at
/// `createContainer`, and at `poststop` the removal of what it left for the container
/// (its report unless it explains a refusal, the mount points it made).
fn hooks(path: &Path, inject: &str, config: Option<&Path>) -> Vec<Hook> {
    let one = |stage: &str| {
        let mut args = vec!["containerspec".to_string(), "hook".into(), stage.into()];
        if stage == "createContainer" {
            args.extend(["--inject".into(), inject.into()]);
        }
        if let Some(c) = config {
            args.extend(["--config".into(), c.display().to_string()]);
        }
        Hook {
            hook_name: stage.into(),
            path: path.display().to_string(),
            args,
            env: Vec::new(),
            timeout: Some(30),
            extra: BTreeMap::new(),
        }
    };
    vec![one("createContainer"), one("poststop")]
}

/// The NVIDIA control nodes every GPU container needs, where the host has them.
const CONTROL_NODES: [&str; 4] = [
    "/dev/nvidiactl",
    "/dev/nvidia-uvm",
    "/dev/nvidia-uvm-tools",
    "/dev/nvidia-modeset",
];

/// The GPU spec: a device per `/dev/nvidiaN` and `all`; the control nodes, the driver's
/// programs, firmware and sockets as the spec's own edits; the hook injects and verifies
/// the libraries.
fn gpu_spec(
    root: &RootFs,
    host_root: &Path,
    gpu: &crate::inventory::model::Gpu,
    hook_path: &Path,
    args: &GenerateArgs,
) -> Result<Spec, CliError> {
    let Some(driver) = gpu.nvidia_libraries.as_ref().or(gpu.nvidia_driver.as_ref()) else {
        let why = if gpu.driver_problems.is_empty() {
            "no NVIDIA driver libraries in its loader cache".to_string()
        } else {
            gpu.driver_problems.join("; ")
        };
        return Err(CliError::Action(format!(
            "{}: {why}: no gpu spec to write",
            host_root.display()
        )));
    };
    let node = |path: &str| device_node(host_root, path);
    let mut gpus: Vec<(u32, DeviceNode)> = root
        .list_dir("/dev")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, _)| {
            let digits = name.strip_prefix("nvidia")?;
            let n: u32 = digits.parse().ok()?;
            // `nvidia1` only: not `nvidia01` or `nvidia+1`, which would name device 1 twice.
            (n.to_string() == digits).then_some(())?;
            Some((n, node(&format!("/dev/{name}"))?))
        })
        .collect();
    gpus.sort_by_key(|(n, _)| *n);
    if gpus.is_empty() {
        return Err(CliError::Action(format!(
            "{}: the driver {} is there but no GPU device node (/dev/nvidia0, ...): no gpu spec to write",
            host_root.display(),
            driver.version
        )));
    }
    let mut devices: Vec<Device> = gpus
        .iter()
        .map(|(n, d)| Device {
            name: n.to_string(),
            annotations: BTreeMap::new(),
            container_edits: ContainerEdits {
                device_nodes: vec![d.clone()],
                ..Default::default()
            },
        })
        .collect();
    devices.push(Device {
        name: "all".into(),
        annotations: BTreeMap::new(),
        container_edits: ContainerEdits {
            device_nodes: gpus.iter().map(|(_, d)| d.clone()).collect(),
            ..Default::default()
        },
    });
    let mut mounts = Vec::new();
    let bind = |path: String| cdi::Mount {
        host_path: path.clone(),
        container_path: path,
        options: ["ro", "nosuid", "nodev", "bind"].map(String::from).to_vec(),
        kind: None,
        extra: BTreeMap::new(),
    };
    for program in [
        "/usr/bin/nvidia-smi",
        "/usr/bin/nvidia-debugdump",
        "/usr/bin/nvidia-persistenced",
        "/usr/bin/nvidia-cuda-mps-control",
        "/usr/bin/nvidia-cuda-mps-server",
    ] {
        if root.is_file(program) {
            mounts.push(bind(program.to_string()));
        }
    }
    let firmware = format!("/lib/firmware/nvidia/{}", driver.version);
    if root.kind(&firmware) == Some(crate::input::rootfs::EntryKind::Dir) {
        mounts.push(bind(firmware));
    }
    for socket in ["/run/nvidia-persistenced/socket", "/tmp/nvidia-mps"] {
        if root.kind(socket).is_some() {
            mounts.push(bind(socket.to_string()));
        }
    }
    Ok(Spec {
        cdi_version: cdi::GENERATED_VERSION.into(),
        kind: format!("{VENDOR}/gpu"),
        annotations: BTreeMap::new(),
        devices,
        container_edits: ContainerEdits {
            device_nodes: CONTROL_NODES.iter().filter_map(|p| node(p)).collect(),
            hooks: hooks(hook_path, "gpu", args.config.as_deref()),
            mounts,
            ..Default::default()
        },
        extra: BTreeMap::new(),
    })
}

/// A character device node of the host (read under `host_root`), with its numbers.
fn device_node(host_root: &Path, path: &str) -> Option<DeviceNode> {
    let meta = std::fs::symlink_metadata(host_root.join(path.trim_start_matches('/'))).ok()?;
    if !meta.file_type().is_char_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some(DeviceNode {
        path: path.to_string(),
        host_path: None,
        kind: Some("c".into()),
        major: Some(nix::sys::stat::major(rdev) as i64),
        minor: Some(nix::sys::stat::minor(rdev) as i64),
        permissions: Some("rw".into()),
        extra: BTreeMap::new(),
    })
}

#[derive(Debug, Serialize)]
struct Checked {
    file: String,
    kind: String,
    devices: Vec<String>,
    problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
struct Problem {
    field: String,
    message: String,
}

fn validate(args: &ValidateArgs) -> Result<u8, CliError> {
    let root = RootFs::open(&args.host_root)?;
    let image = match &args.image {
        Some(path) => Some(image_glibc(path)?),
        None => None,
    };
    let mut results = Vec::new();
    for path in &args.specs {
        let spec = cdi::read(path).map_err(|e| CliError::Action(e.to_string()))?;
        let mut problems = Vec::new();
        let edits = std::iter::once(("containerEdits".to_string(), &spec.container_edits)).chain(
            spec.devices
                .iter()
                .enumerate()
                .map(|(i, d)| (format!("devices[{i}].containerEdits"), &d.container_edits)),
        );
        for (field, e) in edits {
            check_edits(
                &root,
                &args.host_root,
                image.as_ref(),
                &field,
                e,
                &mut problems,
            );
        }
        results.push(Checked {
            file: path.display().to_string(),
            kind: spec.kind.clone(),
            devices: spec.devices.iter().map(|d| d.name.clone()).collect(),
            problems,
        });
    }
    let bad = results.iter().any(|r| !r.problems.is_empty());
    if args.json {
        super::print_json(&results)?;
    } else {
        let mut text = String::new();
        for r in &results {
            let verdict = if r.problems.is_empty() {
                "valid"
            } else {
                "INVALID"
            };
            text.push_str(&format!(
                "{verdict}: {} ({}: {})\n",
                r.file,
                r.kind,
                r.devices.join(", ")
            ));
            for p in &r.problems {
                text.push_str(&format!("  {}: {}\n", p.field, p.message));
            }
        }
        super::print_text(&text)?;
    }
    Ok(u8::from(bad))
}

/// The glibc an image ships (its release, else the highest version node it defines).
struct ImageGlibc {
    display: String,
    version: Option<String>,
}

fn image_glibc(path: &Path) -> Result<ImageGlibc, CliError> {
    let target = Target::open(path)?;
    let inventory = gather(
        &target.rootfs,
        &Request {
            process: target.process.as_ref(),
            ..Default::default()
        },
    );
    Ok(ImageGlibc {
        display: path.display().to_string(),
        version: inventory
            .libc
            .filter(|l| l.family == crate::inventory::model::LibcFamily::Glibc)
            .and_then(|l| l.version),
    })
}

fn check_edits(
    root: &RootFs,
    host_root: &Path,
    image: Option<&ImageGlibc>,
    field: &str,
    edits: &ContainerEdits,
    out: &mut Vec<Problem>,
) {
    let mut problem = |field: String, message: String| out.push(Problem { field, message });
    for (i, m) in edits.mounts.iter().enumerate() {
        let f = format!("{field}.mounts[{i}].hostPath");
        let Ok(real) = root.canonicalize(&m.host_path) else {
            problem(f, format!("{} does not exist on the host", m.host_path));
            continue;
        };
        let Some(image) = image else { continue };
        if !root.is_file(&real) {
            continue;
        }
        let Ok(obj) = Object::load(root, &real) else {
            continue;
        };
        let (Some(needed), Some(has)) = (
            glibc_needed(&obj),
            image.version.as_deref().and_then(Version::parse),
        ) else {
            continue;
        };
        if needed > has {
            problem(
                f,
                format!(
                    "{} needs GLIBC_{needed}; the image {} has glibc {has}",
                    m.host_path, image.display
                ),
            );
        }
    }
    for (i, d) in edits.device_nodes.iter().enumerate() {
        let f = format!("{field}.deviceNodes[{i}]");
        let host = d.host();
        match std::fs::symlink_metadata(host_root.join(host.trim_start_matches('/'))) {
            Err(e) => problem(f, format!("{host}: {e}")),
            Ok(meta) => {
                let t = meta.file_type();
                if !(t.is_char_device() || t.is_block_device()) {
                    problem(f, format!("{host} is not a device node"));
                } else if let (Some(major), Some(minor)) = (d.major, d.minor) {
                    let rdev = meta.rdev();
                    let (hmaj, hmin) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
                    if (hmaj as i64, hmin as i64) != (major, minor) {
                        problem(
                            f,
                            format!(
                                "{host} is {hmaj}:{hmin} on the host, the spec says {major}:{minor}"
                            ),
                        );
                    }
                }
            }
        }
    }
    for (i, h) in edits.hooks.iter().enumerate() {
        let f = format!("{field}.hooks[{i}].path");
        match std::fs::metadata(host_root.join(h.path.trim_start_matches('/'))) {
            Err(e) => problem(f, format!("{}: {e}", h.path)),
            Ok(meta) if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 => {
                problem(f, format!("{} is not an executable file", h.path))
            }
            Ok(_) => {}
        }
    }
}
