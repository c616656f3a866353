//! An Apptainer / SingularityCE SIF file's header and descriptor table, its primary
//! partition, labels descriptor and squashfs superblock check (src/input/sif), then, as
//! `apptainer check` opens a SIF, the squashfs partition in place at its offset (walked
//! as the squashfs target walks an image).

use containerspec::input::sif::{Sif, check_squashfs};
use containerspec::input::squashfs::SquashFs;

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            containerspec_fuzz::panic_hook();
            let file = containerspec_fuzz::memfd(data);
            let Ok(sif) = Sif::read(&file) else {
                return;
            };
            let _ = sif.labels(&file);
            let Ok(desc) = sif.primary_partition(data.len() as u64) else {
                return;
            };
            if check_squashfs(&file, desc).is_err() {
                return;
            }
            let (Ok(offset), Ok(size)) = (u64::try_from(desc.offset), u64::try_from(desc.size))
            else {
                return;
            };
            let Ok(copy) = file.try_clone() else {
                return;
            };
            if let Ok(fs) = SquashFs::open(copy, offset, size, "fuzz") {
                containerspec_fuzz::walk_squashfs(&fs);
            }
        });
    }
}
