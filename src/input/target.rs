//! A target: the container a question is about, whatever form it was named in. An OCI
//! bundle, a bare rootfs directory, an Apptainer image (SIF, squashfs or sandbox) all open
//! as one [`Target`]: a root to read confined, the process that will run (where one is
//! known), and the annotations or labels that may declare what it needs. Every command
//! and the hook take a target; none of them knows which form it came in, except to say it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::bundle::{self, BundleError, MountNamespace};
use super::image::{Image, ImageError, ImageForm};
use super::rootfs::{RootError, RootFs};

/// The form a target was named in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// An OCI bundle: a directory with `config.json`.
    Bundle,
    /// A root filesystem directory, with nothing that says what runs in it.
    Rootfs,
    /// An Apptainer / SingularityCE image.
    Image(ImageForm),
    /// An OCI image layout, unpacked (the manifest's digest).
    Layout(String),
}

impl Form {
    /// `OCI bundle`, `rootfs directory`, `SIF (squashfs, gzip)` and the like.
    pub fn describe(&self) -> String {
        match self {
            Form::Bundle => "OCI bundle".into(),
            Form::Rootfs => "rootfs directory".into(),
            Form::Image(form) => form.describe(),
            Form::Layout(digest) => format!("OCI image layout ({digest})"),
        }
    }
}

/// A container as every entrance takes it.
#[derive(Debug)]
pub struct Target {
    /// What was named: the bundle directory, the image file, the rootfs directory.
    pub path: PathBuf,
    pub form: Form,
    /// The container's files, opened confined.
    pub rootfs: RootFs,
    /// The container's first process: a bundle's `config.json`, an image's command and
    /// environment; None where nothing says what runs (a bare rootfs, an image inspected
    /// without a command).
    pub process: Option<ProcessSpec>,
    /// A bundle's annotations or an image's labels, sorted by key.
    pub annotations: BTreeMap<String, String>,
    /// A bundle's mount namespace as `config.json` asks for it (None for other forms):
    /// the hook mounts only into a namespace the runtime made for the container.
    pub mount_namespace: Option<MountNamespace>,
    /// The environment an image sets (its command, when one is given, runs in it).
    image_env: Vec<String>,
    /// The unpacked image of an OCI layout, removed when the target is dropped.
    _unpacked: Option<super::layout::Unpacked>,
}

/// The container's first process, as the runtime will start it.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
}

impl ProcessSpec {
    /// The value of an environment variable in `process.env` (last definition wins, as
    /// in execve's environment handling by the C library).
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env.iter().rev().find_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            (key == name).then_some(value)
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{path}: {message}")]
    Open { path: String, message: String },
    #[error(
        "{path}: not a directory, SIF or squashfs image (expected a rootfs, an OCI bundle or \
         an Apptainer image)"
    )]
    Unknown { path: String },
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Image(ImageError),
    #[error(transparent)]
    Root(#[from] RootError),
}

impl From<ImageError> for TargetError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Unknown { path } => TargetError::Unknown { path },
            other => TargetError::Image(other),
        }
    }
}

impl Target {
    /// Opens `path` as whichever form it is: a directory with `config.json` is a bundle,
    /// a directory with Apptainer's metadata (`/.singularity.d`) a sandbox, any other
    /// directory a bare rootfs, and a file a SIF or squashfs image.
    pub fn open(path: &Path) -> Result<Target, TargetError> {
        if let Some((dir, tag)) = super::layout::split_ref(path) {
            return Target::layout(path, &dir, Some(&tag));
        }
        let meta = std::fs::metadata(path).map_err(|e| TargetError::Open {
            path: path.display().to_string(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                "no such file or directory".into()
            } else {
                e.to_string()
            },
        })?;
        if !meta.is_dir() {
            return Ok(Target::image(path)?);
        }
        if bundle::is_bundle(path) {
            return Ok(Target::bundle(path)?);
        }
        if super::layout::is_layout(path) {
            return Target::layout(path, path, None);
        }
        let rootfs = RootFs::open(path)?;
        if rootfs.kind("/.singularity.d") == Some(super::rootfs::EntryKind::Dir) {
            return Ok(Target::image(path)?);
        }
        Ok(Target {
            path: path.to_path_buf(),
            form: Form::Rootfs,
            rootfs,
            process: None,
            annotations: BTreeMap::new(),
            mount_namespace: None,
            image_env: Vec::new(),
            _unpacked: None,
        })
    }

    /// Opens the OCI bundle `dir` (see [`bundle::load`]).
    /// An OCI image layout: the image (`tag`, or the only one) for this machine's
    /// platform, unpacked into a private temporary directory.
    pub fn layout(shown: &Path, dir: &Path, tag: Option<&str>) -> Result<Target, TargetError> {
        let platform = format!(
            "linux/{}",
            match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            }
        );
        let unpacked =
            super::layout::unpack(dir, tag, &platform).map_err(|message| TargetError::Open {
                path: shown.display().to_string(),
                message,
            })?;
        Target::unpacked(shown, unpacked)
    }

    /// An image unpacked from an OCI image layout (see [`super::layout::unpack_manifest`]),
    /// named `shown`.
    pub fn unpacked(
        shown: &Path,
        unpacked: super::layout::Unpacked,
    ) -> Result<Target, TargetError> {
        let rootfs = RootFs::open(&unpacked.root.path)?;
        Ok(Target {
            path: shown.to_path_buf(),
            form: Form::Layout(unpacked.digest.clone()),
            rootfs,
            process: Some(ProcessSpec {
                args: unpacked.args.clone(),
                env: unpacked.env.clone(),
                cwd: unpacked.cwd.clone(),
            }),
            annotations: unpacked.labels.clone(),
            mount_namespace: None,
            image_env: Vec::new(),
            _unpacked: Some(unpacked),
        })
    }

    pub fn bundle(dir: &Path) -> Result<Target, BundleError> {
        bundle::load(dir)
    }

    /// Opens the Apptainer image `path` (a SIF, a squashfs image or a sandbox directory),
    /// with no command yet.
    pub fn image(path: &Path) -> Result<Target, ImageError> {
        let image = Image::open(path)?;
        Ok(Target {
            path: image.path,
            form: Form::Image(image.form),
            rootfs: image.root,
            process: None,
            annotations: image.labels,
            mount_namespace: None,
            image_env: image.env,
            _unpacked: None,
        })
    }

    /// A target of the parts a bundle's `config.json` gives.
    pub(super) fn from_bundle(
        dir: PathBuf,
        rootfs: RootFs,
        process: ProcessSpec,
        annotations: BTreeMap<String, String>,
        mount_namespace: MountNamespace,
    ) -> Target {
        Target {
            path: dir,
            form: Form::Bundle,
            rootfs,
            process: Some(process),
            annotations,
            mount_namespace: Some(mount_namespace),
            image_env: Vec::new(),
            _unpacked: None,
        }
    }

    /// The image running `args` (the command `apptainer exec` is given, resolved through
    /// the image's PATH), in the environment the image sets.
    pub fn with_command(mut self, args: Vec<String>) -> Target {
        self.process = Some(ProcessSpec {
            args,
            env: std::mem::take(&mut self.image_env),
            cwd: "/".into(),
        });
        self
    }

    /// The first damage any read met in an image's filesystem, as an error: a search that
    /// met damage went on as if the file were missing, so no verdict may stand on it.
    pub fn damage(&self) -> Result<(), RootError> {
        match self.rootfs.damage() {
            Some(message) => Err(RootError::Damaged { message }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_takes_the_last_definition() {
        let p = ProcessSpec {
            env: vec![
                "A=1".into(),
                "PATH=/bin".into(),
                "A=2".into(),
                "NOVALUE".into(),
            ],
            ..Default::default()
        };
        assert_eq!(p.env_var("A"), Some("2"));
        assert_eq!(p.env_var("PATH"), Some("/bin"));
        assert_eq!(p.env_var("NOVALUE"), None);
        assert_eq!(p.env_var("MISSING"), None);
    }

    /// A scratch directory for one test.
    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("containerspec-target-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn every_form_opens_as_a_target() {
        let dir = scratch("forms");
        // A bare rootfs: nothing says what runs.
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        let t = Target::open(&rootfs).unwrap();
        assert_eq!(t.form, Form::Rootfs);
        assert!(t.process.is_none() && t.annotations.is_empty());

        // A bundle: config.json names the rootfs, the process and the annotations.
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": rootfs},
            "process": {"cwd": "/", "args": ["/bin/app"], "env": ["A=1"],
                        "user": {"uid": 0, "gid": 0}},
            "annotations": {"org.supercontainers.inject": "mpi"}
        });
        std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
        let t = Target::open(&bundle).unwrap();
        assert_eq!(t.form, Form::Bundle);
        assert_eq!(t.process.as_ref().unwrap().args, ["/bin/app"]);
        assert_eq!(t.annotations["org.supercontainers.inject"], "mpi");

        // A sandbox: Apptainer's metadata makes a directory an image, labels included;
        // its command comes with the image's environment.
        let sandbox = dir.join("sandbox");
        std::fs::create_dir_all(sandbox.join(".singularity.d/env")).unwrap();
        std::fs::write(
            sandbox.join(".singularity.d/labels.json"),
            r#"{"org.supercontainers.mpi": "mpich"}"#,
        )
        .unwrap();
        std::fs::write(
            sandbox.join(".singularity.d/env/90-environment.sh"),
            "export PATH=/opt/x/bin\n",
        )
        .unwrap();
        let t = Target::open(&sandbox).unwrap();
        assert_eq!(t.form, Form::Image(ImageForm::Sandbox));
        assert!(t.process.is_none());
        assert_eq!(t.annotations["org.supercontainers.mpi"], "mpich");
        let t = t.with_command(vec!["app".into()]);
        let process = t.process.unwrap();
        assert_eq!(process.args, ["app"]);
        assert_eq!(process.env_var("PATH"), Some("/opt/x/bin"));

        // Anything else is named as such.
        let file = dir.join("notes.txt");
        std::fs::write(&file, "not an image").unwrap();
        let e = Target::open(&file).unwrap_err();
        assert!(matches!(e, TargetError::Unknown { .. }), "{e}");
        assert!(e.to_string().starts_with(&file.display().to_string()));
        let e = Target::open(&dir.join("missing")).unwrap_err();
        assert!(e.to_string().contains("no such file or directory"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
