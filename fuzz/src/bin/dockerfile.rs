//! What `dockerfile check|pin|update` reads: Dockerfiles (src/dockerfile: parse with the
//! heredoc blanking and ARG substitution, then a rewrite of every stage), the layers it
//! streams from a registry (src/registry/layers.rs: the tar applied to the in-memory
//! tree), manifests and indexes (src/registry: `parse_manifest`), tag tracks
//! (src/dockerfile/tags.rs) and auth files (src/registry/auth.rs).
//!
//! The first byte picks the parser (its value modulo 5): '0' a Dockerfile, '1' a layer
//! (an uncompressed tar), '2' a manifest or index, '3' tags ("current\0tag\0tag..."),
//! '4' an auth file (written to a file of this process's, then loaded).

use std::collections::BTreeMap;

use containerspec::dockerfile::rewrite::{self, Labels, StageChange};
use containerspec::dockerfile::{Dockerfile, tags};
use containerspec::registry::{self, AuthFiles, layers};

fn main() {
    let auth = std::env::temp_dir().join(format!("containerspec-fuzz-auth-{}.json", std::process::id()));
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            containerspec_fuzz::panic_hook();
            let Some((&which, rest)) = data.split_first() else {
                return;
            };
            match which % 5 {
                0 => {
                    let text = String::from_utf8_lossy(rest);
                    let mut args = BTreeMap::new();
                    args.insert("TAG".to_string(), "fuzz".to_string());
                    if let Ok(file) = Dockerfile::parse(&text, &args) {
                        // Every stage pinned at its image span, labels set or removed.
                        let changes: Vec<StageChange> = file
                            .stages
                            .iter()
                            .enumerate()
                            .map(|(i, s)| StageChange {
                                reference: Some((s.image_span.clone(), format!("x{i}@sha256:00"))),
                                labels: if i % 2 == 0 {
                                    Labels::Set {
                                        name: "r/n:t".into(),
                                        digest: "sha256:00".into(),
                                        add: true,
                                    }
                                } else {
                                    Labels::Remove
                                },
                            })
                            .collect();
                        let _ = rewrite::apply(&file, &changes);
                    }
                }
                1 => {
                    let mut tree = layers::Tree::default();
                    let _ = tree.apply_layer(rest);
                    let _ = tree.has_libc();
                }
                2 => {
                    let _ = registry::parse_manifest("fuzz", rest);
                }
                3 => {
                    let text = String::from_utf8_lossy(rest);
                    let mut parts = text.split('\0').map(str::to_string);
                    let current = parts.next().unwrap_or_default();
                    let all: Vec<String> = parts.collect();
                    let _ = tags::has_track(&current);
                    let _ = tags::newer_in_track(&current, &all);
                }
                _ => {
                    if std::fs::write(&auth, rest).is_ok() {
                        let files = AuthFiles::load(Some(&auth));
                        let _ = files.find("127.0.0.1:5000", "team/app");
                        let _ = files.find("docker.io", "library/debian");
                    }
                }
            }
        });
    }
}
