//! The JSON the commands print, as JSON Schemas generated from the types that print it.
//! They are checked in under `docs/schema/`; a test regenerates them and fails on any
//! difference, naming the fields a change removes (the contract is that fields are only
//! ever added), so that a change of the contract is a visible, deliberate diff.
//! `CONTAINERSPEC_UPDATE_SCHEMAS=1 cargo test --lib schema` rewrites them.

use schemars::schema_for;

/// Each output's file name under `docs/schema/` and its schema.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    let value = |s: schemars::Schema| s.to_value();
    vec![
        (
            "inspect.json",
            value(schema_for!(crate::inventory::model::Inventory)),
        ),
        (
            "host.json",
            value(schema_for!(super::host::HostJson<'static>)),
        ),
        (
            "check-bundle.json",
            value(schema_for!(crate::engine::report::Report)),
        ),
        (
            "apptainer-check.json",
            value(schema_for!(super::apptainer::CheckJson<'static>)),
        ),
        ("labels.json", value(schema_for!(super::labels::LabelsJson))),
        (
            "dockerfile.json",
            value(schema_for!(super::dockerfile::Report)),
        ),
        ("select.json", value(schema_for!(super::select::SelectJson))),
        (
            "match.json",
            value(schema_for!(super::match_cmd::MatchReport)),
        ),
    ]
}

/// Every property path (`plan.mounts[].kind`) a schema declares, following `$ref`s.
pub fn property_paths(schema: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    walk(schema, schema, "", &mut out, 0);
    out
}

fn walk(
    root: &serde_json::Value,
    node: &serde_json::Value,
    at: &str,
    out: &mut std::collections::BTreeSet<String>,
    depth: usize,
) {
    if depth > 32 {
        return;
    }
    if let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
        if let Some(target) = r.strip_prefix('#').and_then(|p| root.pointer(p)) {
            walk(root, target, at, out, depth + 1);
        }
    }
    if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
        for (name, sub) in props {
            let path = if at.is_empty() {
                name.clone()
            } else {
                format!("{at}.{name}")
            };
            out.insert(path.clone());
            walk(root, sub, &path, out, depth + 1);
        }
    }
    if let Some(items) = node.get("items") {
        walk(root, items, &format!("{at}[]"), out, depth + 1);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for sub in node
            .get(key)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            walk(root, sub, at, out, depth + 1);
        }
    }
    if let Some(extra) = node.get("additionalProperties").filter(|v| v.is_object()) {
        let path = format!("{at}.*");
        out.insert(path.clone());
        walk(root, extra, &path, out, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_schemas_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema");
        let update = std::env::var("CONTAINERSPEC_UPDATE_SCHEMAS").as_deref() == Ok("1");
        let mut problems = Vec::new();
        for (name, schema) in schemas() {
            let path = dir.join(name);
            let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let Ok(old) = std::fs::read_to_string(&path) else {
                problems.push(format!("{}: missing", path.display()));
                continue;
            };
            if old == text {
                continue;
            }
            let old: serde_json::Value = serde_json::from_str(&old).unwrap();
            let (before, after) = (property_paths(&old), property_paths(&schema));
            let removed: Vec<&String> = before.difference(&after).collect();
            let added: Vec<&String> = after.difference(&before).collect();
            problems.push(format!(
                "{}: differs from the types (removed: {removed:?}; added: {added:?}). Fields are only ever added: if this change is meant, run CONTAINERSPEC_UPDATE_SCHEMAS=1 cargo test --lib schema and document it",
                path.display()
            ));
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn paths_follow_references() {
        let schemas = schemas();
        let report = &schemas
            .iter()
            .find(|(n, _)| *n == "check-bundle.json")
            .unwrap()
            .1;
        let paths = property_paths(report);
        for p in [
            "verdict",
            "findings[].code",
            "plan.mounts[].kind",
            "plan.env[].name",
            "host_mpi.origin",
        ] {
            assert!(paths.contains(p), "{p} not in {paths:?}");
        }
        let host = &schemas.iter().find(|(n, _)| *n == "host.json").unwrap().1;
        let paths = property_paths(host);
        assert!(paths.contains("mpi_installations[].origin"), "{paths:?}");
        assert!(paths.contains("libc.version"), "{paths:?}");
    }
}
