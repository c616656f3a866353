//! The OCI state a runtime writes to a hook's stdin, accepting what real runtimes send:
//! `bundle` (or the older `bundlePath`), any `status` (`creating`, `created`, `starting`
//! differ between runtimes), a `pid` that may be absent or 0, annotations, and crun's
//! extra `root`. Unknown fields are ignored.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use serde::Deserialize;

/// The state is a small JSON object; anything larger is not a runtime talking.
const MAX_STATE: u64 = 1 << 20;

#[derive(Debug, Clone, Deserialize)]
pub struct HookState {
    #[serde(default, rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(alias = "bundlePath")]
    pub bundle: PathBuf,
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// crun: the container's root filesystem.
    #[serde(default)]
    pub root: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the OCI state from stdin: {0}")]
    Read(#[from] std::io::Error),
    #[error("the OCI state on stdin is larger than {MAX_STATE} bytes")]
    TooLarge,
    #[error("invalid OCI state on stdin: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("the OCI state's id {0:?} is not usable as a file name")]
    BadId(String),
}

impl HookState {
    pub fn read(mut input: impl Read) -> Result<HookState, StateError> {
        let mut bytes = Vec::new();
        input.by_ref().take(MAX_STATE + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_STATE {
            return Err(StateError::TooLarge);
        }
        let state: HookState = serde_json::from_slice(&bytes)?;
        // The id names report files: no separators, no dot-dot, no NUL.
        let id_ok = !state.id.is_empty()
            && !state.id.contains(['/', '\0'])
            && state.id != "."
            && state.id != "..";
        if !id_ok {
            return Err(StateError::BadId(state.id));
        }
        Ok(state)
    }

    /// The container process, when the runtime says which (0 means "none yet").
    pub fn container_pid(&self) -> Option<i32> {
        self.pid.filter(|p| *p > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_runtimes_send() {
        let runc = r#"{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":4242,"bundle":"/b","annotations":{"a":"b"}}"#;
        let s = HookState::read(runc.as_bytes()).unwrap();
        assert_eq!(
            (s.id.as_str(), s.container_pid(), s.bundle.to_str()),
            ("c1", Some(4242), Some("/b"))
        );
        let old =
            r#"{"ociVersion":"1.0.0","id":"c2","status":"created","pid":0,"bundlePath":"/old"}"#;
        let s = HookState::read(old.as_bytes()).unwrap();
        assert_eq!((s.container_pid(), s.bundle.to_str()), (None, Some("/old")));
        let crun = r#"{"ociVersion":"1.0.0","id":"c3","status":"starting","bundle":"/c","root":"/c/rootfs","extra":1}"#;
        let s = HookState::read(crun.as_bytes()).unwrap();
        assert_eq!(
            s.root.as_deref().and_then(|p| p.to_str()),
            Some("/c/rootfs")
        );
    }

    #[test]
    fn bad_states() {
        assert!(matches!(
            HookState::read(&b"{"[..]),
            Err(StateError::Parse(_))
        ));
        assert!(matches!(
            HookState::read(&b"{\"id\":\"x\"}"[..]),
            Err(StateError::Parse(_))
        ));
        let traversal = r#"{"id":"../../etc","bundle":"/b"}"#;
        assert!(matches!(
            HookState::read(traversal.as_bytes()),
            Err(StateError::BadId(_))
        ));
        let big = vec![b' '; (MAX_STATE + 10) as usize];
        assert!(matches!(
            HookState::read(&big[..]),
            Err(StateError::TooLarge)
        ));
    }
}
