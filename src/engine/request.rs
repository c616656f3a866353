//! What a container asks to have injected: `mpi`, `gpu`, or both, from the bundle's
//! `org.supercontainers.inject` annotation or `--inject`. Checks of glibc, ABI and CPU
//! run whether or not anything is injected.

use std::collections::BTreeMap;

/// The annotation a bundle requests injection with.
pub const INJECT_ANNOTATION: &str = "org.supercontainers.inject";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inject {
    pub mpi: bool,
    pub gpu: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{origin}: unknown inject item {item:?} (expected mpi, gpu or none)")]
pub struct InjectError {
    pub origin: String,
    pub item: String,
}

impl Inject {
    /// Parses a comma-separated list (`mpi,gpu`); `none` and the empty list ask nothing.
    /// `origin` names where the list came from, for the error.
    pub fn parse(list: &str, origin: &str) -> Result<Inject, InjectError> {
        let mut inject = Inject::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.to_ascii_lowercase().as_str() {
                "mpi" => inject.mpi = true,
                "gpu" => inject.gpu = true,
                "none" => {}
                _ => {
                    return Err(InjectError {
                        origin: origin.into(),
                        item: item.into(),
                    });
                }
            }
        }
        Ok(inject)
    }

    /// `--inject` when given, else the annotation.
    pub fn resolve(
        flag: Option<&str>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Inject, InjectError> {
        match (flag, annotations.get(INJECT_ANNOTATION)) {
            (Some(list), _) => Inject::parse(list, "--inject"),
            (None, Some(list)) => Inject::parse(list, &format!("annotation {INJECT_ANNOTATION}")),
            (None, None) => Ok(Inject::default()),
        }
    }

    pub fn any(&self) -> bool {
        self.mpi || self.gpu
    }

    /// The list form, for reports.
    pub fn items(&self) -> Vec<&'static str> {
        [(self.mpi, "mpi"), (self.gpu, "gpu")]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(
            Inject::parse("mpi", "x"),
            Ok(Inject {
                mpi: true,
                gpu: false
            })
        );
        assert_eq!(
            Inject::parse(" mpi , GPU ", "x"),
            Ok(Inject {
                mpi: true,
                gpu: true
            })
        );
        assert_eq!(Inject::parse("", "x"), Ok(Inject::default()));
        assert_eq!(Inject::parse("none", "x"), Ok(Inject::default()));
        let err = Inject::parse("mpi,infiniband", "--inject").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--inject: unknown inject item \"infiniband\" (expected mpi, gpu or none)"
        );
    }

    #[test]
    fn the_flag_wins_over_the_annotation() {
        let mut a = BTreeMap::new();
        a.insert(INJECT_ANNOTATION.to_string(), "gpu".to_string());
        assert_eq!(
            Inject::resolve(Some("mpi"), &a),
            Ok(Inject {
                mpi: true,
                gpu: false
            })
        );
        assert_eq!(
            Inject::resolve(None, &a),
            Ok(Inject {
                mpi: false,
                gpu: true
            })
        );
        a.insert(INJECT_ANNOTATION.to_string(), "bogus".to_string());
        assert!(
            Inject::resolve(None, &a)
                .unwrap_err()
                .to_string()
                .contains("annotation org.supercontainers.inject")
        );
    }
}
