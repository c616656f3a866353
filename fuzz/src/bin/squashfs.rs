//! A squashfs image read in place (src/input/squashfs): superblock, compressor options,
//! metadata blocks, inodes, directory listings and lookups, symlinks, data blocks and
//! fragments, ids, with every compressor the reader supports. The walk is
//! `containerspec_fuzz::walk_squashfs`.

use containerspec::input::squashfs::SquashFs;

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            containerspec_fuzz::panic_hook();
            let file = containerspec_fuzz::memfd(data);
            if let Ok(fs) = SquashFs::open(file, 0, data.len() as u64, "fuzz") {
                containerspec_fuzz::walk_squashfs(&fs);
            }
        });
    }
}
