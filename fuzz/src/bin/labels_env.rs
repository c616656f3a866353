//! Small text formats read from images: Apptainer's /.singularity.d/labels.json and
//! /.singularity.d/env/*.sh (src/input/image.rs), /etc/os-release
//! (src/inventory/osrelease.rs), ld.so.conf with its include globs
//! (src/inventory/ldconf.rs), the CUDA runtimes' metadata (src/inventory/cuda.rs), the
//! container's NVIDIA_REQUIRE_CUDA (src/engine/cuda.rs) and CDI specs (src/input/cdi.rs).
//!
//! The first byte picks the parser (its value modulo 8), so that each corpus file says which
//! one it feeds: the seeds start with '0' labels.json, '1' an env script, '2' os-release,
//! '3' ld.so.conf (with "pattern\0name" after a NUL, a glob match), '4' CUDA metadata (a
//! wheel's METADATA and RECORD, conda record names, version.json / version.txt, library
//! file names), '5' NVIDIA_REQUIRE_CUDA (with a driver version after a NUL), '6' a CDI spec.

use containerspec::input::image;
use containerspec::engine::cuda as rules;
use containerspec::input::cdi;
use containerspec::inventory::{cuda, ldconf, osrelease};

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            containerspec_fuzz::panic_hook();
            let Some((&which, rest)) = data.split_first() else {
                return;
            };
            match which % 8 {
                0 => {
                    let _ = image::parse_labels(rest, "fuzz.sif");
                }
                1 => {
                    let _ = image::parse_env_script(&String::from_utf8_lossy(rest));
                }
                2 => {
                    let _ = osrelease::parse(&String::from_utf8_lossy(rest));
                }
                4 => {
                    let text = String::from_utf8_lossy(rest);
                    let _ = cuda::metadata_version(&text);
                    let _ = cuda::record_paths(&text);
                    let _ = cuda::toolkit_version_json(&text);
                    let _ = cuda::toolkit_version_txt(&text);
                    let _ = cuda::require_cuda_minimum(&text);
                    for line in text.lines().take(64) {
                        let _ = cuda::dist_info_name(line);
                        let _ = cuda::conda_record_name(line);
                        let _ = cuda::file_version(line);
                        let _ = cuda::soname_major(line);
                        let _ = cuda::is_cudart_file(line);
                    }
                }
                5 => {
                    let text = String::from_utf8_lossy(rest);
                    let (requirement, driver) = text.split_once('\0').unwrap_or((&text, "470.256.02"));
                    if let Ok(r) = rules::parse_requirement(requirement) {
                        let _ = r.allows_forward_compat(driver);
                        let _ = r.forward_compat_branches();
                    }
                    let _ = rules::check(driver, requirement, false);
                    let _ = rules::driver_cuda_version(driver);
                }
                6 => {
                    if let Ok(spec) = cdi::parse(rest) {
                        let _ = cdi::check(&spec);
                    }
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
