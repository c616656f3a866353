//! Container Device Interface specs (the JSON that podman, CRI-O, containerd, Docker and
//! Apptainer read from `/etc/cdi` and `/var/run/cdi`), as data: read with bounds, checked
//! field by field, written by `containerspec cdi generate`.
//!
//! Specs are read as JSON or YAML (the form `nvidia-ctk` writes by default).
//! The types cover the spec's parts a runtime applies (CDI specification, `cdiVersion`
//! 0.3.0 to 0.8.0): devices with their container edits, and the spec's own edits: `env`,
//! `deviceNodes`, `mounts`, `hooks`. Fields this program does not use are kept as they
//! are read (`extra`), never dropped silently: `validate` names the ones it cannot check.
//! The CDI project's own Rust crate would bring a JSON-schema engine and an HTTP stack
//! into a binary that runs as root on every container start; these few types do not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A spec larger than this is not a device description.
pub const MAX_SPEC: u64 = 4 << 20;

/// The version generated specs carry: GPU devices are named by index (`0`), which CDI
/// allows from 0.5.0 on (newer CDI libraries refuse such a spec that says less), and
/// podman 4.3 (Debian 12) reads 0.1.0 to 0.5.0.
pub const GENERATED_VERSION: &str = "0.5.0";
const KNOWN_VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0",
];
/// The hook names CDI allows (OCI hook points).
const HOOK_NAMES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    #[serde(rename = "cdiVersion")]
    pub cdi_version: String,
    /// `vendor/class`, e.g. `containerspec.io/mpi`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub devices: Vec<Device>,
    #[serde(
        rename = "containerEdits",
        default,
        skip_serializing_if = "ContainerEdits::is_empty"
    )]
    pub container_edits: ContainerEdits,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Device {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "containerEdits", default)]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerEdits {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(rename = "deviceNodes", default, skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ContainerEdits {
    pub fn is_empty(&self) -> bool {
        self.env.is_empty()
            && self.device_nodes.is_empty()
            && self.hooks.is_empty()
            && self.mounts.is_empty()
            && self.extra.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceNode {
    /// Where it appears in the container.
    pub path: String,
    /// Where it is on the host, when not at `path`.
    #[serde(rename = "hostPath", default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// `c` or `b`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl DeviceNode {
    pub fn host(&self) -> &str {
        self.host_path.as_deref().unwrap_or(&self.path)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mount {
    #[serde(rename = "hostPath")]
    pub host_path: String,
    #[serde(rename = "containerPath")]
    pub container_path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hook {
    #[serde(rename = "hookName")]
    pub hook_name: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A spec that cannot be used: the file and the field, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct SpecError {
    pub file: String,
    pub field: String,
    pub message: String,
}

/// Reads a spec file (JSON or YAML) and checks its structure.
pub fn read(path: &std::path::Path) -> Result<Spec, SpecError> {
    let file = path.display().to_string();
    let err = |field: &str, message: String| SpecError {
        file: file.clone(),
        field: field.to_string(),
        message,
    };
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| err("(file)", e.to_string()))?;
    let meta = file.metadata().map_err(|e| err("(file)", e.to_string()))?;
    if !meta.is_file() {
        return Err(err("(file)", "not a regular file".into()));
    }
    // Read from the file opened, never more than a spec may have.
    let mut bytes = Vec::new();
    file.take(MAX_SPEC + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err("(file)", e.to_string()))?;
    if bytes.len() as u64 > MAX_SPEC {
        return Err(err(
            "(file)",
            format!("more than a spec may have ({MAX_SPEC} bytes)"),
        ));
    }
    parse(&bytes).map_err(|(field, message)| err(&field, message))
}

/// Parses and checks a spec, JSON or YAML (a document that does not start with `{`);
/// the error is (field, message).
pub fn parse(bytes: &[u8]) -> Result<Spec, (String, String)> {
    if bytes.len() as u64 > MAX_SPEC {
        return Err(("(file)".into(), "too large".into()));
    }
    let json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let spec: Spec = if json {
        serde_json::from_slice(bytes).map_err(|e| {
            (
                format!("line {} column {}", e.line(), e.column()),
                format!("not a CDI spec: {e}"),
            )
        })?
    } else {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ("(file)".to_string(), format!("not UTF-8: {e}")))?;
        let value = yaml::to_json(text)?;
        serde_json::from_value(value)
            .map_err(|e| ("(document)".to_string(), format!("not a CDI spec: {e}")))?
    };
    check(&spec)?;
    Ok(spec)
}

/// YAML, read into the JSON value it stands for, through the parser's events: one
/// document, no aliases (an alias can multiply a small file into a huge tree), nesting at
/// most [`MAX_DEPTH`](yaml::MAX_DEPTH) deep. Plain scalars become numbers, booleans and
/// null as YAML 1.2's core schema reads them; everything else is a string.
mod yaml {
    use serde_json::{Map, Value};
    use yaml_rust2::parser::{Event, Parser};
    use yaml_rust2::scanner::TScalarStyle;

    pub const MAX_DEPTH: usize = 64;

    enum Frame {
        Seq(Vec<Value>),
        Map(Map<String, Value>, Option<String>),
    }

    pub fn to_json(text: &str) -> Result<Value, (String, String)> {
        let mut parser = Parser::new_from_str(text);
        let mut stack: Vec<Frame> = Vec::new();
        let mut done: Option<Value> = None;
        loop {
            let (event, mark) = parser.next_token().map_err(|e| {
                let m = e.marker();
                (
                    format!("line {} column {}", m.line(), m.col() + 1),
                    format!("not YAML: {}", e.info()),
                )
            })?;
            let at = || format!("line {} column {}", mark.line(), mark.col() + 1);
            let value = match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => continue,
                Event::DocumentStart => {
                    if done.is_some() {
                        return Err((at(), "more than one YAML document".into()));
                    }
                    continue;
                }
                Event::StreamEnd => break,
                Event::Alias(_) => {
                    return Err((at(), "YAML aliases are not read in a CDI spec".into()));
                }
                Event::SequenceStart(..) | Event::MappingStart(..) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err((at(), format!("nested deeper than {MAX_DEPTH}")));
                    }
                    stack.push(if matches!(event, Event::SequenceStart(..)) {
                        Frame::Seq(Vec::new())
                    } else {
                        Frame::Map(Map::new(), None)
                    });
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                    Some(Frame::Seq(items)) => Value::Array(items),
                    Some(Frame::Map(map, None)) => Value::Object(map),
                    _ => return Err((at(), "a mapping key without a value".into())),
                },
                Event::Scalar(text, style, _, _) => scalar(text, style),
            };
            match stack.last_mut() {
                None => done = Some(value),
                Some(Frame::Seq(items)) => items.push(value),
                Some(Frame::Map(map, key)) => match key.take() {
                    None => match value {
                        Value::String(k) => *key = Some(k),
                        Value::Number(_) | Value::Bool(_) | Value::Null => {
                            *key = Some(value.to_string())
                        }
                        _ => return Err((at(), "a mapping key that is not a scalar".into())),
                    },
                    Some(k) => {
                        map.insert(k, value);
                    }
                },
            }
        }
        done.ok_or_else(|| ("(document)".to_string(), "empty".to_string()))
    }

    fn scalar(text: String, style: TScalarStyle) -> Value {
        if style != TScalarStyle::Plain {
            return Value::String(text);
        }
        match text.as_str() {
            "" | "~" | "null" | "Null" | "NULL" => Value::Null,
            "true" | "True" | "TRUE" => Value::Bool(true),
            "false" | "False" | "FALSE" => Value::Bool(false),
            _ => match text.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::String(text),
            },
        }
    }
}

/// The spec's structure, as runtimes check it: the version, the kind's vendor and class,
/// device names, absolute paths, hook names.
pub fn check(spec: &Spec) -> Result<(), (String, String)> {
    if !KNOWN_VERSIONS.contains(&spec.cdi_version.as_str()) {
        return Err((
            "cdiVersion".into(),
            format!(
                "{:?} is not a CDI version (known: {})",
                spec.cdi_version,
                KNOWN_VERSIONS.join(", ")
            ),
        ));
    }
    check_kind(&spec.kind).map_err(|m| ("kind".to_string(), m))?;
    if spec.devices.is_empty() {
        return Err(("devices".into(), "no device".into()));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, device) in spec.devices.iter().enumerate() {
        let field = format!("devices[{i}]");
        check_device_name(&device.name).map_err(|m| (format!("{field}.name"), m))?;
        // CDI allows a name that starts with a digit from 0.5.0 on.
        if device.name.starts_with(|c: char| c.is_ascii_digit())
            && version_below(&spec.cdi_version, "0.5.0")
        {
            return Err((
                format!("{field}.name"),
                format!(
                    "{:?} starts with a digit, which needs cdiVersion 0.5.0 or later (the spec says {})",
                    device.name, spec.cdi_version
                ),
            ));
        }
        if !names.insert(&device.name) {
            return Err((
                format!("{field}.name"),
                format!("{:?} is defined twice", device.name),
            ));
        }
        check_edits(&device.container_edits, &format!("{field}.containerEdits"))?;
    }
    check_edits(&spec.container_edits, "containerEdits")
}

/// `a < b` for the versions this module knows (`0.N.0`).
fn version_below(a: &str, b: &str) -> bool {
    let key = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    key(a) < key(b)
}

fn check_kind(kind: &str) -> Result<(), String> {
    let (vendor, class) = kind
        .split_once('/')
        .ok_or_else(|| format!("{kind:?} is not vendor/class"))?;
    let name_ok = |s: &str, extra: &[char]| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    };
    if !name_ok(vendor, &['-', '_', '.']) {
        return Err(format!(
            "vendor {vendor:?}: letters, digits, '-', '_', '.'; starts with a letter, ends with a letter or digit"
        ));
    }
    if !name_ok(class, &['-', '_']) {
        return Err(format!(
            "class {class:?}: letters, digits, '-', '_'; starts with a letter, ends with a letter or digit"
        ));
    }
    Ok(())
}

fn check_device_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: letters, digits, '-', '_', '.', ':'; starts and ends with a letter or digit"
        ))
    }
}

fn check_edits(edits: &ContainerEdits, field: &str) -> Result<(), (String, String)> {
    for (i, e) in edits.env.iter().enumerate() {
        if !e.contains('=') || e.starts_with('=') {
            return Err((
                format!("{field}.env[{i}]"),
                format!("{e:?} is not NAME=VALUE"),
            ));
        }
    }
    for (i, d) in edits.device_nodes.iter().enumerate() {
        let f = format!("{field}.deviceNodes[{i}]");
        absolute(&d.path, &format!("{f}.path"))?;
        if let Some(h) = &d.host_path {
            absolute(h, &format!("{f}.hostPath"))?;
        }
        if let Some(t) = &d.kind {
            if !matches!(t.as_str(), "c" | "b" | "u" | "p") {
                return Err((format!("{f}.type"), format!("{t:?} is not c, b, u or p")));
            }
        }
        if let Some(p) = &d.permissions {
            if p.is_empty() || !p.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
                return Err((
                    format!("{f}.permissions"),
                    format!("{p:?} is not made of r, w, m"),
                ));
            }
        }
    }
    for (i, m) in edits.mounts.iter().enumerate() {
        let f = format!("{field}.mounts[{i}]");
        absolute(&m.host_path, &format!("{f}.hostPath"))?;
        absolute(&m.container_path, &format!("{f}.containerPath"))?;
    }
    for (i, h) in edits.hooks.iter().enumerate() {
        let f = format!("{field}.hooks[{i}]");
        if !HOOK_NAMES.contains(&h.hook_name.as_str()) {
            return Err((
                format!("{f}.hookName"),
                format!("{:?} is not one of {}", h.hook_name, HOOK_NAMES.join(", ")),
            ));
        }
        absolute(&h.path, &format!("{f}.path"))?;
    }
    Ok(())
}

fn absolute(path: &str, field: &str) -> Result<(), (String, String)> {
    if path.starts_with('/') && !path.split('/').any(|p| p == "..") {
        Ok(())
    } else {
        Err((
            field.to_string(),
            format!("{path:?} is not an absolute path without '..'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NVIDIA: &str = r#"{
      "cdiVersion": "0.5.0",
      "kind": "nvidia.com/gpu",
      "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}},
                  {"name": "all", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}}],
      "containerEdits": {
        "env": ["NVIDIA_VISIBLE_DEVICES=void"],
        "deviceNodes": [{"path": "/dev/nvidiactl"}, {"path": "/dev/nvidia-uvm"}],
        "hooks": [{"hookName": "createContainer", "path": "/usr/bin/nvidia-cdi-hook",
                   "args": ["nvidia-cdi-hook", "update-ldcache", "--folder", "/usr/lib/x86_64-linux-gnu"]}],
        "mounts": [{"hostPath": "/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05",
                    "containerPath": "/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05",
                    "options": ["ro", "nosuid", "nodev", "bind"]}]
      }
    }"#;

    #[test]
    fn reads_a_vendor_spec() {
        let spec = parse(NVIDIA.as_bytes()).unwrap();
        assert_eq!(spec.kind, "nvidia.com/gpu");
        assert_eq!(spec.devices.len(), 2);
        assert_eq!(spec.container_edits.mounts.len(), 1);
        assert_eq!(spec.container_edits.hooks[0].hook_name, "createContainer");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (NVIDIA.replace("0.5.0", "9.9"), "cdiVersion"),
            (NVIDIA.replace("nvidia.com/gpu", "nvidia.com"), "kind"),
            (NVIDIA.replace("nvidia.com/gpu", "-x/gpu"), "kind"),
            (
                NVIDIA.replace(r#""name": "all""#, r#""name": "0""#),
                "devices[1].name",
            ),
            (
                NVIDIA.replace("createContainer", "beforeStart"),
                "containerEdits.hooks[0].hookName",
            ),
            (
                NVIDIA.replace(r#""containerPath": "/usr"#, r#""containerPath": "usr"#),
                "containerEdits.mounts[0].containerPath",
            ),
            (
                NVIDIA.replace(
                    r#"{"path": "/dev/nvidia0"}]}},"#,
                    r#"{"path": "dev/nvidia0"}]}},"#,
                ),
                "devices[0].containerEdits.deviceNodes[0].path",
            ),
            (
                NVIDIA.replace("NVIDIA_VISIBLE_DEVICES=void", "NVIDIA_VISIBLE_DEVICES"),
                "containerEdits.env[0]",
            ),
            (NVIDIA.replace("0.5.0", "0.4.0"), "devices[0].name"),
        ];
        for (text, field) in cases {
            let (got, message) = parse(text.as_bytes()).unwrap_err();
            assert_eq!(got, field, "{message}");
        }
        let (field, message) = parse(b"{\"cdiVersion\": ").unwrap_err();
        assert!(field.starts_with("line 1"), "{field}");
        assert!(message.starts_with("not a CDI spec"), "{message}");
    }

    /// The shape `nvidia-ctk cdi generate` writes (its default output is YAML).
    const NVIDIA_YAML: &str = "---\ncdiVersion: 0.5.0\ncontainerEdits:\n  deviceNodes:\n  - path: /dev/nvidiactl\n  env:\n  - NVIDIA_VISIBLE_DEVICES=void\n  hooks:\n  - args:\n    - nvidia-cdi-hook\n    - update-ldcache\n    hookName: createContainer\n    path: /usr/bin/nvidia-cdi-hook\n  mounts:\n  - containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05\n    hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05\n    options:\n    - ro\n    - nosuid\n    - nodev\n    - bind\ndevices:\n- containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n      major: 195\n      minor: 0\n  name: \"0\"\n- containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n  name: all\nkind: nvidia.com/gpu\n";

    #[test]
    fn reads_yaml_as_nvidia_writes_it() {
        let spec = parse(NVIDIA_YAML.as_bytes()).unwrap();
        assert_eq!(spec.cdi_version, "0.5.0");
        assert_eq!(spec.kind, "nvidia.com/gpu");
        assert_eq!(spec.devices[0].name, "0");
        assert_eq!(
            spec.devices[0].container_edits.device_nodes[0].major,
            Some(195)
        );
        assert_eq!(spec.container_edits.hooks[0].args[1], "update-ldcache");
        assert_eq!(spec.container_edits.mounts[0].options.len(), 4);
    }

    #[test]
    fn yaml_errors_name_the_place() {
        let (field, message) = parse(b"cdiVersion: [0.5.0\nkind: x").unwrap_err();
        assert!(field.starts_with("line "), "{field}");
        assert!(message.starts_with("not YAML"), "{message}");
        let bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n";
        let (_, message) = parse(bomb.as_bytes()).unwrap_err();
        assert_eq!(message, "YAML aliases are not read in a CDI spec");
        let deep = format!("{}x{}", "[".repeat(100), "]".repeat(100));
        let (_, message) = parse(format!("a: {deep}").as_bytes()).unwrap_err();
        assert_eq!(message, "nested deeper than 64");
        let (_, message) = parse(b"cdiVersion: 0.5.0\n---\nkind: x\n").unwrap_err();
        assert_eq!(message, "more than one YAML document");
        let (field, _) = parse(b"cdiVersion: 0.5.0\nkind: a.io/b\ndevices: []\n").unwrap_err();
        assert_eq!(field, "devices");
    }

    #[test]
    fn round_trips() {
        let spec = parse(NVIDIA.as_bytes()).unwrap();
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(parse(text.as_bytes()).unwrap(), spec);
    }
}
