//! /etc/ld.so.cache of an image or host, all of glibc's layouts (src/ldcache).

use containerspec::ldcache::LdCache;

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const HWCAPS: &[&str] = &["x86-64-v4", "x86-64-v3", "x86-64-v2"];

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            containerspec_fuzz::panic_hook();
            let Ok(cache) = LdCache::parse(data) else {
                return;
            };
            for soname in ["libc.so.6", "libmpi.so.12", "libcuda.so.1"] {
                let _ = cache.lookup(soname, EM_X86_64, HWCAPS);
                let _ = cache.lookup(soname, EM_AARCH64, &[]);
            }
            if let Some(first) = cache.entries.first() {
                let _ = cache.lookup(&first.soname, EM_X86_64, HWCAPS);
            }
            for entry in &cache.entries {
                let _ = entry.arch_description();
                let _ = entry.required_machine();
                let _ = entry.isa_level();
            }
        });
    }
}
