//! Which host MPI installation serves a container, and which host library serves each
//! MPI soname the container needs. Pure: the installations and the container's needs are
//! facts already read.
//!
//! The container's needs decide: an application linked against the MPI-5 standard ABI
//! (`libmpi_abi.so.1`) takes any implementation's `libmpi_abi` of that ABI version; one
//! linked against the MPICH ABI takes any of its implementations (MPICH, Intel MPI, Cray
//! MPICH, MVAPICH), whatever the soname spelling; Open MPI takes Open MPI. Among those
//! that fit, the one named most explicitly wins: the config's list, its prefixes, the
//! caller's `LD_LIBRARY_PATH`, then the loader cache. With none that fits, the first is
//! kept, so that the report names the mismatch.

use serde::Serialize;

use super::facts::{ContainerFacts, HostMpi, Lib};
use crate::inventory::model::MpiAbi;
use crate::inventory::mpi::abi_role;

/// The installation chosen and why, for the report.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct MpiChoice {
    #[serde(skip)]
    pub index: usize,
    /// `Intel MPI 2021.13 (libmpi.so.12) at /sw/intel-mpi/2021.13.1/lib/libmpi.so.12`
    pub chosen: String,
    /// How it was found: `config-prefix`, `ld-library-path`, `config-libraries`, `loader-cache`.
    pub origin: crate::inventory::mpi_host::MpiOrigin,
    pub reason: String,
    /// The other installations seen, described the same way.
    pub others: Vec<String>,
}

/// The ABI the container's MPI needs: the standard ABI where it links `libmpi_abi`, else
/// its library's family.
pub fn container_abi(c: &ContainerFacts) -> Option<(MpiAbi, String)> {
    if let Some(s) = c
        .mpi_targets
        .keys()
        .find(|s| s.starts_with("libmpi_abi.so."))
    {
        return Some((MpiAbi::Standard, s.clone()));
    }
    let m = c.mpi.as_ref()?;
    let abi = m.install.as_ref().map(|i| i.abi)?;
    Some((abi, m.lib.name().to_string()))
}

fn describe(m: &HostMpi) -> String {
    let (name, version) = m
        .main
        .install
        .as_ref()
        .map(|i| {
            (
                i.implementation.as_str(),
                i.version.as_deref().unwrap_or("?"),
            )
        })
        .unwrap_or(("MPI", "?"));
    format!(
        "{name} {version} ({}) at {}",
        m.main.lib.name(),
        m.main.lib.path
    )
}

/// Chooses among `candidates` (most preferred first) for the container.
pub fn choose_mpi(
    candidates: &[HostMpi],
    container: &ContainerFacts,
    wanted_label: Option<&str>,
) -> Option<MpiChoice> {
    if candidates.is_empty() {
        return None;
    }
    let abi_of = |m: &HostMpi| m.main.install.as_ref().map(|i| i.abi);
    let needed = container_abi(container);
    let fits = |m: &HostMpi| match &needed {
        Some((MpiAbi::Standard, soname)) => m.main.lib.name() == soname,
        Some((abi, _)) => abi_of(m) == Some(*abi),
        None => false,
    };
    let label_abi = wanted_label.map(|l| match l.to_ascii_lowercase().as_str() {
        "openmpi" => MpiAbi::OpenMpi,
        "mpi-abi" => MpiAbi::Standard,
        _ => MpiAbi::Mpich,
    });
    let (index, reason) = if let Some(i) = candidates.iter().position(fits) {
        let (abi, soname) = needed.clone().unwrap_or((MpiAbi::Mpich, String::new()));
        let what = match abi {
            MpiAbi::Standard => format!("the container links the MPI standard ABI ({soname})"),
            MpiAbi::Mpich => format!("the container uses the MPICH ABI ({soname})"),
            MpiAbi::OpenMpi => format!("the container uses Open MPI ({soname})"),
        };
        let first = if i == 0 {
            String::new()
        } else {
            "; installations found earlier do not fit".to_string()
        };
        (
            i,
            format!(
                "{what}; found through {}{first}",
                candidates[i].origin.describe()
            ),
        )
    } else if let Some(i) =
        label_abi.and_then(|a| candidates.iter().position(|m| abi_of(m) == Some(a)))
    {
        (
            i,
            "the container's org.supercontainers.mpi label asks for this family".to_string(),
        )
    } else {
        (
            0,
            format!(
                "no installation fits the container's MPI; the first found, through {}, is judged",
                candidates[0].origin.describe()
            ),
        )
    };
    Some(MpiChoice {
        index,
        chosen: describe(&candidates[index]),
        origin: candidates[index].origin,
        reason,
        others: candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, m)| format!("{} (through {})", describe(m), m.origin.describe()))
            .collect(),
    })
}

/// The host library that serves a soname the container needs: the same soname, else
/// the installation's library of the same ABI and interface (`libmpich.so.12` is served
/// by Intel MPI's `libmpi.so.12`, `libmpichfort.so.12` by `libmpifort.so.12`).
pub fn serving<'a>(host: &'a HostMpi, soname: &str) -> Option<&'a Lib> {
    let all = || std::iter::once(&host.main.lib).chain(host.family.values());
    if let Some(lib) = all().find(|l| l.name() == soname) {
        return Some(lib);
    }
    let role = abi_role(soname)?;
    // The standard ABI's version is its soname's: `libmpi_abi.so.1` only serves itself
    // (MPICH 5.0.0/5.0.1's `libmpi_abi.so.0` is a draft of it, not version 1).
    if role.0 == MpiAbi::Standard {
        return None;
    }
    all().find(|l| abi_role(l.name()) == Some(role))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::facts::MpiLib;
    use crate::inventory::model::MpiInstall;
    use crate::inventory::mpi_host::MpiOrigin;

    fn host(
        implementation: &str,
        abi: MpiAbi,
        soname: &str,
        origin: MpiOrigin,
        family: &[&str],
    ) -> HostMpi {
        let lib = |s: &str| Lib {
            path: format!("/sw/{implementation}/lib/{s}"),
            soname: Some(s.into()),
            ..Default::default()
        };
        HostMpi {
            main: MpiLib {
                lib: lib(soname),
                install: Some(MpiInstall {
                    abi,
                    implementation: implementation.into(),
                    version: Some("1.0".into()),
                    soname: soname.into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            family: family.iter().map(|s| (s.to_string(), lib(s))).collect(),
            origin,
            ..Default::default()
        }
    }

    fn container(abi: MpiAbi, sonames: &[&str]) -> ContainerFacts {
        let mut c = ContainerFacts::default();
        for s in sonames {
            c.mpi_targets.insert(s.to_string(), format!("/usr/lib/{s}"));
        }
        c.mpi = Some(MpiLib {
            lib: Lib {
                path: format!("/usr/lib/{}", sonames[0]),
                soname: Some(sonames[0].into()),
                ..Default::default()
            },
            install: Some(MpiInstall {
                abi,
                ..Default::default()
            }),
            ..Default::default()
        });
        c
    }

    #[test]
    fn the_container_abi_decides_then_the_most_explicit_source() {
        let hosts = vec![
            host(
                "Open MPI",
                MpiAbi::OpenMpi,
                "libmpi.so.40",
                MpiOrigin::ConfigPrefix,
                &[],
            ),
            host(
                "Intel MPI",
                MpiAbi::Mpich,
                "libmpi.so.12",
                MpiOrigin::LdLibraryPath,
                &["libmpifort.so.12"],
            ),
            host(
                "MPICH",
                MpiAbi::Mpich,
                "libmpich.so.12",
                MpiOrigin::LoaderCache,
                &[],
            ),
            host(
                "MPICH",
                MpiAbi::Standard,
                "libmpi_abi.so.1",
                MpiOrigin::LoaderCache,
                &[],
            ),
        ];
        let c = container(MpiAbi::Mpich, &["libmpich.so.12", "libmpichfort.so.12"]);
        let choice = choose_mpi(&hosts, &c, None).unwrap();
        assert_eq!(choice.index, 1, "{choice:?}");
        assert_eq!(choice.others.len(), 3);
        assert!(choice.reason.contains("MPICH ABI"), "{}", choice.reason);
        let served = serving(&hosts[1], "libmpichfort.so.12").unwrap();
        assert_eq!(served.name(), "libmpifort.so.12");
        assert_eq!(
            serving(&hosts[1], "libmpich.so.12").unwrap().name(),
            "libmpi.so.12"
        );
        assert!(serving(&hosts[1], "libmpicxx.so.12").is_none());

        let c = container(MpiAbi::OpenMpi, &["libmpi.so.40"]);
        assert_eq!(choose_mpi(&hosts, &c, None).unwrap().index, 0);
        let c = container(MpiAbi::Standard, &["libmpi_abi.so.1"]);
        assert_eq!(choose_mpi(&hosts, &c, None).unwrap().index, 3);
        // No fit: the first is judged, and the report will name the mismatch.
        let c = container(MpiAbi::OpenMpi, &["libmpi.so.40"]);
        let choice = choose_mpi(&hosts[1..], &c, Some("mpich")).unwrap();
        assert_eq!(choice.index, 0);
        assert!(choice.reason.contains("label"), "{}", choice.reason);
    }
}
