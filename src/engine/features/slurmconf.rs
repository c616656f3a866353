//! The nodes of a `slurm.conf` as the features of containerspec's namespace on their
//! `NodeName=` lines (what `match --slurm-conf` judges against). A name with
//! containerspec's prefix that it does not write is an error, naming the line: a typo
//! would otherwise place jobs wrongly. A site's own features are left alone.

use std::collections::BTreeSet;

use super::catalog::parse;
use super::render::SLURM_PREFIX;

/// One declared node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfNode {
    /// As written: a name or a hostlist expression (`n[01-64]`).
    pub name: String,
    /// Its features in containerspec's namespace, without the prefix.
    pub features: BTreeSet<String>,
}

/// The nodes `text` declares (`NodeName=DEFAULT` lines aside), in order.
pub fn nodes(text: &str) -> Result<Vec<ConfNode>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        let (mut name, mut features) = (None, None);
        for word in line.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            if key.eq_ignore_ascii_case("nodename") {
                name = Some(value);
            } else if key.eq_ignore_ascii_case("features") || key.eq_ignore_ascii_case("feature") {
                features = Some(value);
            }
        }
        let Some(name) = name else { continue };
        if name.eq_ignore_ascii_case("default") || name.is_empty() {
            continue;
        }
        let mut mine = BTreeSet::new();
        for f in features.iter().flat_map(|f| f.split(',')) {
            let Some(short) = f.strip_prefix(SLURM_PREFIX) else {
                continue;
            };
            if parse(short).is_none() {
                return Err(format!(
                    "line {}: node {name}: unknown feature {f:?}: containerspec writes no such \
                     name (regenerate the line with containerspec host --format slurm)",
                    n + 1
                ));
            }
            mine.insert(short.to_string());
        }
        out.push(ConfNode {
            name: name.to_string(),
            features: mine,
        });
    }
    if out.is_empty() {
        return Err("no NodeName= line".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lines_their_features_and_typos() {
        let conf = "ClusterName=c\n# NodeName=commented Features=cs_x\nNodeName=DEFAULT CPUs=4\n\
                    nodename=n[01-04] CPUs=1 Features=site_ib,cs_arch_x86_64,cs_x86_64_v3 State=UNKNOWN\n\
                    NodeName=gpu1 Features=cs_cuda_12.4 # trailing\n";
        let got = nodes(conf).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, "n[01-04]");
        assert_eq!(
            got[0].features.iter().collect::<Vec<_>>(),
            ["arch_x86_64", "x86_64_v3"]
        );
        assert_eq!(got[1].features.iter().collect::<Vec<_>>(), ["cuda_12.4"]);
        let e = nodes("NodeName=a Features=cs_arch_x86_64\nNodeName=b Features=cs_glibc_two\n")
            .unwrap_err();
        assert!(
            e.starts_with("line 2: node b: unknown feature \"cs_glibc_two\""),
            "{e}"
        );
        assert_eq!(
            nodes("PartitionName=p Nodes=ALL\n").unwrap_err(),
            "no NodeName= line"
        );
    }
}
