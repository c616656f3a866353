//! The host as Linux describes it: uname and /proc/cpuinfo.

#[allow(unused_imports)]
use super::*;

/// `uname -m`, falling back to the compile-time architecture if uname fails.
pub(super) fn machine() -> String {
    // SAFETY: utsname is plain data, so all-zero bytes are a valid value for uname to fill.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid, writable utsname.
    if unsafe { libc::uname(&raw mut uts) } != 0 {
        return std::env::consts::ARCH.to_string();
    }
    // take_while instead of CStr: no reliance on the kernel's NUL terminator.
    let bytes: Vec<u8> = uts
        .machine
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| c.to_ne_bytes()[0])
        .collect();
    match String::from_utf8_lossy(&bytes).into_owned() {
        m if m.is_empty() => std::env::consts::ARCH.to_string(),
        m => m,
    }
}

/// The "key: value" lines of the first processor block, as archspec reads them.
pub(super) fn first_processor_cpuinfo() -> Option<BTreeMap<String, String>> {
    let file = std::fs::File::open("/proc/cpuinfo").ok()?;
    Some(parse_first_processor(BufReader::new(file)))
}

/// Parses up to the blank line that ends the first block: the flags of the other processors
/// are the same and reading them all costs time on many-core hosts.
pub(super) fn parse_first_processor(reader: impl BufRead) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    // Bytes, not lines(): a read error ends the loop instead of repeating forever.
    for line in reader.split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        match line.split_once(':') {
            Some((key, value)) => {
                fields.insert(key.trim().to_string(), value.trim().to_string());
            }
            None if !fields.is_empty() => break,
            None => {}
        }
    }
    fields
}

pub(super) fn cpuinfo_features(cpuinfo: &BTreeMap<String, String>, arch: &str) -> BTreeSet<String> {
    let key = if arch == "aarch64" {
        "Features"
    } else {
        "flags"
    };
    let line = cpuinfo.get(key).map(String::as_str).unwrap_or_default();
    line.split_ascii_whitespace().map(str::to_string).collect()
}
