//! `containerspec dockerfile check|pin|update` against real registries started here (the
//! reference distribution registry, Debian's `docker-registry`), with images built from
//! the test root filesystems and pushed with skopeo (`registry_rig`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::registry_rig::{Registry, layout_digest};
use crate::util::{TempDir, cached_rootfs, containerspec};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/golden/dockerfile"
);

fn golden(name: &str, fill: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(Path::new(GOLDEN).join(name)).unwrap();
    for (k, v) in fill {
        text = text.replace(&format!("{{{k}}}"), v);
    }
    text
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = containerspec(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> (i32, serde_json::Value) {
    let (code, stdout, stderr) = run(args);
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (code, value)
}

/// Runs `args` with only `env` set beside PATH (no auth file of the machine's is read).
fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_containerspec"));
    cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pin_rewrites_every_form_exactly_as_the_golden_file() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    reg.push("base:bookworm", "debian:bookworm");
    reg.push("base:trixie", "debian:trixie");
    reg.push("multi:bookworm", "multi:bookworm");
    let addr = reg.addr();
    let bookworm = layout_digest("base:bookworm");
    let multi = layout_digest("multi:bookworm");
    let dir = TempDir::new("dockerfile-golden");
    let file = write(
        dir.path(),
        "Dockerfile",
        &golden("forms.Dockerfile", &[("REG", &addr)]),
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let f = file.to_str().unwrap();

    // check changes nothing and says what is wrong.
    let before = std::fs::read_to_string(&file).unwrap();
    let (code, report) = json(&["dockerfile", "check", "--json", f]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    let bases = report["files"][0]["bases"].as_array().unwrap().clone();
    let status: Vec<(&str, &str)> = bases
        .iter()
        .map(|b| (b["kind"].as_str().unwrap(), b["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        status,
        [
            ("image", "unpinnable"),
            ("image", "unpinned"),
            ("image", "unpinned"),
            ("scratch", "-"),
            ("stage", "-"),
            ("image", "unpinned"),
        ],
        "{report:#}"
    );
    // The index digest is what gets pinned; its platforms are in the report.
    let cross = &bases[2];
    assert_eq!(cross["resolved"]["digest"], multi.as_str());
    let platforms: Vec<&str> = cross["resolved"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(
        cross["resolved"]["platforms"][0]["digest"],
        layout_digest("base:bookworm").as_str()
    );
    // The heredoc's FROM line is not a stage.
    assert_eq!(bases.len(), 6);

    let (code, stdout, stderr) = run(&["dockerfile", "pin", f]);
    // 1: one base (built from two ARGs) could not be pinned, and the report says why.
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("put the whole reference in one ARG default"),
        "{stdout}"
    );
    let expected = golden(
        "forms.pinned.Dockerfile",
        &[("REG", &addr), ("BOOKWORM", &bookworm), ("MULTI", &multi)],
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "the rewrite keeps the file's mode");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file is left beside it"
    );

    // Pinning again changes nothing.
    let (_, stdout, _) = run(&["dockerfile", "pin", f]);
    assert!(stdout.contains("up to date"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
}

#[test]
fn a_repushed_tag_fails_check_and_update_moves_the_pin() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    reg.push("base:bookworm", "base:stable");
    let dir = TempDir::new("dockerfile-repush");
    let file = write(
        dir.path(),
        "Containerfile",
        &format!("FROM {}/base:stable\nRUN true\n", reg.addr()),
    );
    let d = dir.path().to_str().unwrap();
    let (code, _, _) = run(&["dockerfile", "pin", d]);
    assert_eq!(code, 0);
    let (code, out, _) = run(&["dockerfile", "check", d]);
    assert_eq!(code, 0, "{out}");

    reg.push("base:trixie", "base:stable");
    let (code, report) = json(&["dockerfile", "check", "--json", d]);
    assert_eq!(code, 1, "{report:#}");
    let base = &report["files"][0]["bases"][0];
    assert_eq!(base["status"], "stale");
    assert_eq!(base["pinned"], layout_digest("base:bookworm").as_str());
    assert_eq!(
        base["resolved"]["digest"],
        layout_digest("base:trixie").as_str()
    );

    let (code, out, err) = run(&["dockerfile", "update", d]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    let trixie = layout_digest("base:trixie");
    assert!(
        text.starts_with(&format!("FROM {}/base:stable@{trixie}\n", reg.addr())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "org.opencontainers.image.base.digest=\"{trixie}\""
        )),
        "{text}"
    );
    let (code, out, _) = run(&["dockerfile", "check", d]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn newer_tags_of_the_track_are_listed_and_taken() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    for (layout, tag) in [
        ("base:bullseye", "12.1"),
        ("base:bookworm", "12.2"),
        ("base:trixie", "13.0"),
        ("base:bookworm", "bookworm-20250101"),
        ("base:trixie", "bookworm-20250301"),
        ("base:trixie", "latest"),
    ] {
        reg.push(layout, &format!("base:{tag}"));
    }
    let dir = TempDir::new("dockerfile-tags");
    let file = write(
        dir.path(),
        "Dockerfile",
        &format!(
            "FROM {a}/base:12.1 AS one\nFROM {a}/base:bookworm-20250101\n",
            a = reg.addr()
        ),
    );
    let f = file.to_str().unwrap();
    let (code, report) = json(&["dockerfile", "check", "--json", f]);
    assert_eq!(code, 1);
    let bases = &report["files"][0]["bases"];
    assert_eq!(bases[0]["newer_tags"], serde_json::json!(["12.2"]));
    assert_eq!(
        bases[1]["newer_tags"],
        serde_json::json!(["bookworm-20250301"])
    );

    // Without --to-newer-tags update pins but keeps the tags.
    let (code, _, _) = run(&["dockerfile", "update", f]);
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("base:12.1@{}", layout_digest("base:bullseye"))),
        "{text}"
    );

    let (code, out, err) = run(&["dockerfile", "update", "--to-newer-tags", f]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    let a = reg.addr();
    assert!(
        text.contains(&format!(
            "FROM {a}/base:12.2@{} AS one\n",
            layout_digest("base:bookworm")
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "FROM {a}/base:bookworm-20250301@{}\n",
            layout_digest("base:trixie")
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "org.opencontainers.image.base.name=\"{a}/base:bookworm-20250301\""
        )),
        "{text}"
    );
    assert!(!text.contains("13.0") && !text.contains("latest"), "{text}");
}

/// A host description as an admin collects it: `host --root ROOT --json`.
fn describe(root: &Path, into: &Path) -> PathBuf {
    let out = containerspec(&["host", "--root", root.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = into.join(format!(
        "{}.json",
        root.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn update_refuses_a_base_whose_glibc_the_hosts_mpi_cannot_load_into() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let (Some(bookworm_host), Some(bullseye_image)) = (
        cached_rootfs("bookworm-mpich"),
        cached_rootfs("bullseye-mpich"),
    ) else {
        return;
    };
    let dir = TempDir::new("dockerfile-compat");
    let hosts = dir.path().join("hosts");
    std::fs::create_dir_all(&hosts).unwrap();
    let host = describe(&bookworm_host, &hosts);
    let needed = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&host).unwrap())
        .unwrap()["mpi_installations"][0]["glibc_needed"]
        .as_str()
        .unwrap()
        .to_string();

    reg.push("base:bookworm", "base:stable");
    let file = write(
        dir.path(),
        "Dockerfile",
        &format!(
            "FROM {}/base:stable@{}\n",
            reg.addr(),
            layout_digest("base:bookworm")
        ),
    );
    let before = std::fs::read_to_string(&file).unwrap();
    // The tag moves to an image with an older glibc (bullseye's 2.31).
    reg.push("base:bullseye", "base:stable");
    let f = file.to_str().unwrap();
    let h = hosts.to_str().unwrap();
    let (code, report) = json(&[
        "dockerfile",
        "update",
        "--json",
        "--hosts",
        h,
        "--inject",
        "mpi",
        f,
    ]);
    assert_eq!(code, 1, "{report:#}");
    let after = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        after.lines().next(),
        before.lines().next(),
        "the pin did not move"
    );
    assert!(!after.contains(&layout_digest("base:bullseye")), "{after}");
    let refused = &report["files"][0]["bases"][0]["refused"][0];
    assert_eq!(refused["host"], "bookworm-mpich");
    let finding = &refused["findings"][0];
    assert_eq!(finding["code"], "glibc-too-old", "{report:#}");
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("needs GLIBC_{needed}")) && message.contains("ships glibc 2.31"),
        "{message}"
    );

    // The same verdict as check-bundle on the whole image (bullseye's MPICH root) with
    // that host's MPI injected, a pair the injection matrix (inject_pairs) runs for real.
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": bullseye_image},
        "process": {"cwd": "/", "args": ["/usr/bin/mpichversion"], "user": {"uid": 0, "gid": 0}},
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let (code, verdict) = json(&[
        "check-bundle",
        bundle.to_str().unwrap(),
        "--inject",
        "mpi",
        "--host-root",
        bookworm_host.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 1, "{verdict:#}");
    assert!(
        verdict["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "glibc-too-old"),
        "{verdict:#}"
    );

    // Without MPI injection nothing in the base stops it on that host: the move is made.
    let (code, out, err) = run(&["dockerfile", "update", "--hosts", h, f]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains(&layout_digest("base:bullseye")),
    );
}

#[test]
fn update_refuses_to_drop_a_platform_a_host_needs() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let Some(arm_root) = cached_rootfs("bookworm-arm64") else {
        return;
    };
    let dir = TempDir::new("dockerfile-platform");
    let hosts = dir.path().join("hosts");
    std::fs::create_dir_all(&hosts).unwrap();
    describe(&arm_root, &hosts);
    reg.push("multi:bookworm", "app:base");
    let multi = layout_digest("multi:bookworm");
    let file = write(
        dir.path(),
        "Dockerfile",
        &format!("FROM {}/app:base@{multi}\n", reg.addr()),
    );
    // The tag now points to an amd64-only image.
    reg.push("base:bookworm", "app:base");
    let f = file.to_str().unwrap();
    let (code, report) = json(&[
        "dockerfile",
        "update",
        "--json",
        "--hosts",
        hosts.to_str().unwrap(),
        f,
    ]);
    assert_eq!(code, 1, "{report:#}");
    let finding = &report["files"][0]["bases"][0]["refused"][0]["findings"][0];
    assert_eq!(finding["code"], "arch-mismatch", "{report:#}");
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("is x86_64; the host is aarch64"),
        "{finding}"
    );
    assert!(std::fs::read_to_string(&file).unwrap().contains(&multi));
}

#[test]
fn credentials_come_from_auth_files() {
    let Some(reg) = Registry::start(Some(("ci", "s3cret"))) else {
        return;
    };
    reg.push("base:bookworm", "private/base:bookworm");
    let dir = TempDir::new("dockerfile-auth");
    let file = write(
        dir.path(),
        "Dockerfile",
        &format!("FROM {}/private/base:bookworm\n", reg.addr()),
    );
    let f = file.to_str().unwrap();
    let before = std::fs::read_to_string(&file).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let home_s = home.to_str().unwrap();

    // Anonymous: refused, and the message says how to log in.
    let (code, out, _) = run_env(&["dockerfile", "pin", f], &[("HOME", home_s)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{f}:1:")) && out.contains("anonymous access refused"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    let auth = |user: &str, pass: &str| {
        use base64::Engine;
        serde_json::json!({"auths": {reg.addr(): {"auth":
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))}}})
        .to_string()
    };
    // Wrong credentials: the file they came from is named.
    let wrong = write(dir.path(), "wrong.json", &auth("ci", "nope"));
    let (code, out, _) = run_env(
        &[
            "dockerfile",
            "pin",
            "--authfile",
            wrong.to_str().unwrap(),
            f,
        ],
        &[("HOME", home_s)],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("refused the credentials from {}", wrong.display())),
        "{out}"
    );
    assert!(!out.contains("nope"), "the secret is never printed: {out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // Podman's file, found through XDG_RUNTIME_DIR as podman login leaves it.
    let runtime = dir.path().join("run");
    std::fs::create_dir_all(runtime.join("containers")).unwrap();
    write(
        &runtime.join("containers"),
        "auth.json",
        &auth("ci", "s3cret"),
    );
    let (code, out, err) = run_env(
        &["dockerfile", "pin", f],
        &[
            ("HOME", home_s),
            ("XDG_RUNTIME_DIR", runtime.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains(&layout_digest("base:bookworm"))
    );

    // Docker's file, in ~/.docker/config.json.
    std::fs::write(&file, &before).unwrap();
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    write(&home.join(".docker"), "config.json", &auth("ci", "s3cret"));
    let (code, out, err) = run_env(&["dockerfile", "check", f], &[("HOME", home_s)]);
    assert_eq!(code, 1, "unpinned, but resolved: {out}{err}");
    assert!(out.contains(&layout_digest("base:bookworm")), "{out}");
}

#[test]
fn bad_input_names_the_file_and_line_and_changes_nothing() {
    let Some(reg) = Registry::start(None) else {
        return;
    };
    reg.push("base:bookworm", "base:bookworm");
    let dir = TempDir::new("dockerfile-bad");
    let d = dir.path();
    let a = reg.addr();

    // Unparsable.
    let broken = write(
        d,
        "Dockerfile.broken",
        "FROM debian\nRUN true\n\"not an instruction\n",
    );
    let (code, out, _) = run(&["dockerfile", "pin", broken.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("{}:3:", broken.display())), "{out}");

    // An unknown tag, beside a good one in the same file: the file stays as it was.
    let text = format!("FROM {a}/base:bookworm\nFROM {a}/base:no-such-tag\n");
    let unknown = write(d, "Dockerfile.unknown", &text);
    let (code, out, _) = run(&["dockerfile", "pin", unknown.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{}:2:", unknown.display())) && out.contains("not found"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&unknown).unwrap(), text);

    // An ARG without a value.
    let noarg = write(d, "Dockerfile.noarg", "ARG TAG\nFROM debian:${TAG}\n");
    let (code, out, _) = run(&["dockerfile", "check", noarg.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{}:2:", noarg.display())) && out.contains("ARG TAG has no value"),
        "{out}"
    );

    // Unreachable: a loopback port nothing listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let text = format!("FROM 127.0.0.1:{port}/base:bookworm\n");
    let gone = write(d, "Dockerfile.gone", &text);
    let (code, out, _) = run(&[
        "dockerfile",
        "pin",
        "--timeout",
        "5",
        gone.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("cannot reach 127.0.0.1:{port}")),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&gone).unwrap(), text);

    // A server answering garbage to every request.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let gport = server.local_addr().unwrap().port();
    let garbage = std::thread::spawn(move || {
        server.set_nonblocking(false).unwrap();
        for _ in 0..8 {
            let Ok((mut s, _)) = server.accept() else {
                break;
            };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "<html>certainly not a manifest</html>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let text = format!("FROM 127.0.0.1:{gport}/base:bookworm\n");
    let junk = write(d, "Dockerfile.junk", &text);
    let (code, out, err) = run(&[
        "dockerfile",
        "pin",
        "--timeout",
        "5",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("the registry's answer is not valid"), "{out}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read_to_string(&junk).unwrap(), text);
    drop(garbage);

    // A path that does not exist.
    let (code, _, err) = run(&["dockerfile", "check", d.join("missing").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("missing"), "{err}");
}

/// The GitHub Action in contrib/: its definition declares every input its step uses, and
/// its step, run as the runner runs it (INPUT_* variables, GITHUB_OUTPUT, the summary),
/// checks and updates Dockerfiles against a real registry.
#[test]
fn the_github_action_checks_and_updates() {
    let action_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/github-action");
    let text = std::fs::read_to_string(action_dir.join("action.yml")).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    let action = &docs[0];
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let declared: Vec<String> = action["inputs"]
        .as_hash()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let mut used = 0;
    for piece in text.split("${{ inputs.").skip(1) {
        let name = piece.split(' ').next().unwrap();
        assert!(
            declared.iter().any(|d| d == name),
            "input {name} is used but not declared"
        );
        used += 1;
    }
    assert!(used >= declared.len(), "every input reaches the step");
    assert!(
        action["runs"]["steps"][0]["run"]
            .as_str()
            .unwrap()
            .contains("$GITHUB_ACTION_PATH/run.sh")
    );

    let Some(reg) = Registry::start(None) else {
        return;
    };
    reg.push("base:bookworm", "base:stable");
    let dir = TempDir::new("dockerfile-action");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let file = write(
        &repo,
        "Dockerfile",
        &format!("FROM {}/base:stable\n", reg.addr()),
    );
    let step = |command: &str| {
        let output = dir.path().join(format!("{command}.output"));
        let summary = dir.path().join(format!("{command}.summary"));
        let out = std::process::Command::new(action_dir.join("run.sh"))
            .current_dir(&repo)
            .env("GITHUB_ACTION_PATH", &action_dir)
            .env("CONTAINERSPEC", env!("CARGO_BIN_EXE_containerspec"))
            .env("RUNNER_TEMP", dir.path())
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("INPUT_COMMAND", command)
            .env("INPUT_PATHS", ".")
            .env("INPUT_TO_NEWER_TAGS", "false")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            std::fs::read_to_string(output).unwrap_or_default(),
            std::fs::read_to_string(summary).unwrap_or_default(),
        )
    };
    let (code, stdout, outputs, summary) = step("check");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("::warning file=./Dockerfile,line=1::") && stdout.contains("unpinned"),
        "{stdout}"
    );
    assert!(
        outputs.contains("status=1\n") && outputs.contains("changed=0\n"),
        "{outputs}"
    );
    let report_path = outputs
        .lines()
        .find_map(|l| l.strip_prefix("report="))
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report_path).unwrap()).unwrap();
    assert_eq!(report["summary"]["unpinned"], 1);
    assert!(summary.contains("unpinned: 1"), "{summary}");

    let (code, stdout, outputs, _) = step("update");
    assert_eq!(code, Some(0), "{stdout}");
    assert!(outputs.contains("changed=1\n"), "{outputs}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains(&layout_digest("base:bookworm"))
    );
    let (code, _, outputs, _) = step("check");
    assert_eq!(code, Some(0));
    assert!(outputs.contains("status=0\n"), "{outputs}");
}

/// The bearer-token handshake public registries ask for (a `401` with a `Bearer` challenge,
/// a token fetched anonymously from the realm with the repository's pull scope, then the
/// request again with it), against a small server of this test's that speaks it and
/// serves the rig's real bookworm manifest. The real registries above use no tokens.
#[test]
fn anonymous_bearer_tokens_are_fetched_from_the_realm() {
    let layouts = crate::registry_rig::layouts();
    let digest = layout_digest("base:bookworm");
    let blob = layouts
        .join("base/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let Ok(manifest) = std::fs::read(&blob) else {
        crate::util::built(
            blob.clone(),
            "the registry rig's layouts: run tests/rigs/registry.sh",
        );
        return;
    };
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in server.incoming() {
            let Ok(mut s) = stream else { break };
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let line = request.lines().next().unwrap_or("").to_string();
            let authorized = request
                .lines()
                .any(|l| l.eq_ignore_ascii_case("authorization: Bearer t0k3n"));
            log.lock()
                .unwrap()
                .push(format!("{line} authorized={authorized}"));
            let path = line.split(' ').nth(1).unwrap_or("");
            let (status, ctype, body): (&str, &str, Vec<u8>) = if path.starts_with("/token?") {
                (
                    "200 OK",
                    "application/json",
                    br#"{"token":"t0k3n"}"#.to_vec(),
                )
            } else if !authorized {
                (
                    "401 Unauthorized",
                    "application/json",
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}"#.to_vec(),
                )
            } else if path == "/v2/base/manifests/bookworm" {
                (
                    "200 OK",
                    "application/vnd.oci.image.manifest.v1+json",
                    manifest.clone(),
                )
            } else {
                (
                    "404 Not Found",
                    "application/json",
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"x"}]}"#.to_vec(),
                )
            };
            let challenge = format!(
                "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test-registry\",scope=\"repository:base:pull\"\r\n"
            );
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
                body.len(),
                if status.starts_with("401") {
                    challenge.as_str()
                } else {
                    ""
                }
            );
            let _ = s.write_all(&body);
        }
    });
    let dir = TempDir::new("dockerfile-token");
    let file = write(
        dir.path(),
        "Dockerfile",
        &format!("FROM 127.0.0.1:{port}/base:bookworm\n"),
    );
    let home = dir.path().to_str().unwrap();
    let (code, out, err) = run_env(
        &["dockerfile", "pin", file.to_str().unwrap()],
        &[("HOME", home)],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains(&format!("base:bookworm@{digest}")),
        "{out}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("GET /token?") && l.contains("scope=repository%3Abase%3Apull")),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|l| l == "GET /v2/base/manifests/bookworm HTTP/1.1 authorized=true"),
        "{seen:#?}"
    );
}
