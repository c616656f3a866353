use super::*;

#[test]
fn prefixes_are_installation_trees_outside_the_distribution() {
    let cases = [
        ("/sw/openmpi/5.0.11/lib", Some("/sw/openmpi/5.0.11")),
        (
            "/opt/intel/mpi/2021.13/lib/release",
            Some("/opt/intel/mpi/2021.13"),
        ),
        ("/apps/mpich-4.2-abc/lib64", Some("/apps/mpich-4.2-abc")),
        ("/usr/local/openmpi/lib", Some("/usr/local/openmpi")),
        ("/opt/lib", Some("/opt/lib")),
        ("/sw/x", Some("/sw/x")),
        ("/usr/lib/x86_64-linux-gnu", None),
        ("/usr/lib/x86_64-linux-gnu/openmpi/lib", None),
        ("/usr/local/lib", None),
        ("/lib64", None),
        ("relative/lib", None),
    ];
    for (dir, want) in cases {
        assert_eq!(prefix_of(dir).as_deref(), want, "{dir}");
    }
}

#[test]
fn search_path_keeps_absolute_directories() {
    assert_eq!(
        search_path("/a/lib::rel:/b/lib/;/c"),
        vec!["/a/lib".to_string(), "/b/lib".into(), "/c".into()]
    );
}
