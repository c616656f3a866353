//! containerspec's own configuration file, /etc/containerspec/config.toml (src/config).

use std::path::Path;

use containerspec::config::Config;

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            containerspec_fuzz::panic_hook();
            if let Ok(text) = std::str::from_utf8(data) {
                let _ = Config::parse(text, Path::new("fuzz.toml"));
            }
        });
    }
}
