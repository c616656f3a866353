//! ELF headers, dynamic section, version tables, notes and dynamic symbols of a library
//! or executable from an image (src/inventory/elf), and the CPU targets its sections
//! record (src/inventory/microarch).

use containerspec::inventory::{elf, microarch};

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            containerspec_fuzz::panic_hook();
            if let Ok(info) = elf::ElfInfo::parse(data) {
                let _ = info.machine_name();
                let _ = info.x86_isa_level();
                let _ = info.required_versions().count();
                let _ = microarch::targets_in(data, &info, "/usr/lib/glibc-hwcaps/x86-64-v3/f");
                let _ = microarch::targets_in(data, &info, "/f");
            }
            let _ = elf::dynamic_symbols(data);
            let _ = elf::section_bytes(data, ".note.gnu.property");
            let _ = elf::metadata_ranges(data);
            let _ = elf::read_symbol_string(data, "gnu_get_libc_version");
            let _ = microarch::dispatch_evidence(data);
        });
    }
}
