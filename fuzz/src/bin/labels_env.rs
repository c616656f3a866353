//! Small text formats read from images: Apptainer's /.singularity.d/labels.json and
//! /.singularity.d/env/*.sh (src/input/image.rs), /etc/os-release
//! (src/inventory/osrelease.rs) and ld.so.conf with its include globs
//! (src/inventory/ldconf.rs).
//!
//! The first byte picks the parser (its value modulo 4), so that each corpus file says which
//! one it feeds: the seeds start with '0' labels.json, '1' an env script, '2' os-release,
//! '3' ld.so.conf (with "pattern\0name" after a NUL, a glob match).

use containerspec::input::image;
use containerspec::inventory::{ldconf, osrelease};

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            containerspec_fuzz::panic_hook();
            let Some((&which, rest)) = data.split_first() else {
                return;
            };
            match which % 4 {
                0 => {
                    let _ = image::parse_labels(rest, "fuzz.sif");
                }
                1 => {
                    let _ = image::parse_env_script(&String::from_utf8_lossy(rest));
                }
                2 => {
                    let _ = osrelease::parse(&String::from_utf8_lossy(rest));
                }
                _ => {
                    let text = String::from_utf8_lossy(rest);
                    let _ = ldconf::parse(&text);
                    // Include patterns against a name: "pattern\0name".
                    if let Some((pattern, name)) = text.split_once('\0') {
                        let _ = ldconf::glob_match(pattern, name);
                    }
                }
            }
        });
    }
}
