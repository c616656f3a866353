//! Node features and image needs from untrusted text: a host description (`host --json`
//! as `match --hosts` reads it) turned into features, a `slurm.conf`'s node lines, and
//! feature names parsed back. Every feature published must parse and stay in Slurm's
//! and Kubernetes' character sets; nothing may panic or loop on a hostile version.

use containerspec::engine::features::{self, slurmconf};
use containerspec::engine::hostdesc::HostDescription;

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            let text = String::from_utf8_lossy(data);
            if let Ok(nodes) = slurmconf::nodes(&text) {
                for n in &nodes {
                    for f in &n.features {
                        assert!(features::parse(f).is_some(), "{f}");
                    }
                }
            }
            for word in text.split(|c: char| c.is_whitespace() || c == ',') {
                let _ = features::parse(word);
            }
            if let Ok(host) = serde_json::from_slice::<HostDescription>(data) {
                let offer = features::offer(&host);
                for f in &offer.features {
                    assert!(
                        features::parse(f).is_some(),
                        "published but unparsable: {f}"
                    );
                    assert!(
                        f.len() <= 63
                            && f.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'),
                        "{f}"
                    );
                }
            }
        });
    }
}
