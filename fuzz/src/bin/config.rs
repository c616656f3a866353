//! An OCI bundle's config.json (src/input/bundle.rs): the runtime spec, its root path,
//! process and annotations. One bundle directory (with an empty rootfs/) per process; its
//! config.json is rewritten for every input.

use std::path::{Path, PathBuf};

use containerspec::input::bundle;

fn main() {
    let dir = bundle_dir();
    let config = dir.join("config.json");
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            containerspec_fuzz::panic_hook();
            std::fs::write(&config, data).expect("writing config.json");
            let _ = bundle::load(&dir);
        });
    }
}

/// `containerspec-fuzz-bundle-PID` in the temporary directory. The fuzzer kills its
/// processes, so the directories of processes that are gone are removed here.
fn bundle_dir() -> PathBuf {
    const PREFIX: &str = "containerspec-fuzz-bundle-";
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(dir.join("rootfs")).expect("creating the bundle directory");
    dir
}
