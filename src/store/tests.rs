use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;

/// A scratch directory for one test (mode 0755, ours).
fn scratch(tag: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("containerspec-store-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn a_planted_symlink_is_replaced_not_written_through() {
    let base = scratch("planted");
    let victim = base.join("victim");
    std::fs::write(&victim, "host file").unwrap();
    let store = Store::open(&base.join("store")).unwrap();
    symlink(&victim, base.join("store/abc.json")).unwrap();
    let path = store.write("abc.json", b"report").unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host file");
    assert!(
        !std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "report");
    assert_eq!(store.read("abc.json", 100).unwrap().unwrap(), b"report");
    // Reading through a symlink is refused too; removing one removes the link only.
    symlink(&victim, base.join("store/link.json")).unwrap();
    assert!(matches!(
        store.read("link.json", 100),
        Err(StoreError::NotAFile { .. })
    ));
    store.remove("link.json").unwrap();
    assert!(victim.is_file());
    assert_eq!(store.read("missing.json", 100).unwrap(), None);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn the_directory_must_be_real_and_ours_alone() {
    let base = scratch("dir");
    std::fs::create_dir(base.join("elsewhere")).unwrap();
    symlink(base.join("elsewhere"), base.join("link")).unwrap();
    let e = Store::open(&base.join("link")).unwrap_err();
    assert!(matches!(e, StoreError::Symlink { .. }), "{e}");
    std::fs::create_dir(base.join("open")).unwrap();
    std::fs::set_permissions(base.join("open"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = Store::open(&base.join("open")).unwrap_err();
    assert!(matches!(e, StoreError::Writable { .. }), "{e}");
    assert!(e.to_string().contains("777"), "{e}");
    std::fs::write(base.join("file"), "").unwrap();
    let e = Store::open(&base.join("file")).unwrap_err();
    assert!(matches!(e, StoreError::NotADirectory { .. }), "{e}");
    // Created when missing.
    let store = Store::open(&base.join("new")).unwrap();
    assert!(store.path().is_dir());
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn names_are_single_components() {
    for bad in ["", "../x.json", "a/b", ".hidden", "x\n", &"a".repeat(256)] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
    for good in [
        "0123abc.json",
        "abc.ld.so.cache",
        "host-facts-00ff.json",
        "pod_1@x+y",
    ] {
        assert!(check_name(good).is_ok(), "{good:?}");
    }
}

#[test]
fn large_and_special_files_are_not_read() {
    let base = scratch("limits");
    let store = Store::open(&base.join("store")).unwrap();
    store.write("big.json", &[b'x'; 100]).unwrap();
    assert!(matches!(
        store.read("big.json", 10),
        Err(StoreError::TooLarge { .. })
    ));
    nix::unistd::mkfifo(
        &base.join("store/fifo.json"),
        Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    assert!(matches!(
        store.read("fifo.json", 10),
        Err(StoreError::NotAFile { .. })
    ));
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn pruning_keeps_the_newest() {
    let base = scratch("prune");
    let store = Store::open(&base.join("store")).unwrap();
    for i in 0..5 {
        store.write(&format!("c{i}.json"), b"{}").unwrap();
        // Distinct modification times, oldest first.
        let t = nix::sys::time::TimeSpec::new(1_000_000 + i, 0);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &store.file_path(&format!("c{i}.json")),
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
    store.write("host-facts-1.json", b"{}").unwrap();
    store.write("keep.ld.so.cache", b"x").unwrap();
    store.prune(".json", 2, |n| !n.starts_with("host-"));
    let mut left: Vec<String> = std::fs::read_dir(store.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "c3.json",
            "c4.json",
            "host-facts-1.json",
            "keep.ld.so.cache"
        ]
    );
    let _ = std::fs::remove_dir_all(&base);
}
