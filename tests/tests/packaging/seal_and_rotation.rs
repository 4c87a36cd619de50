//! The log shipping's rotation and the image's seal, run for real: the rotation's systemd
//! units verified, the real logrotate on a copy of its configuration, and
//! `packer/scripts/seal.sh` on stand-ins for the machine-id and cloud-init.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use blackbox::tool;

use super::{assert_verify_is_clean, packer_dir, verify_root};

/// `systemd-analyze verify` accepts the log rotation's service and timer (with stand-ins
/// for the programs they run).
#[test]
fn log_rotation_units_pass_systemd_analyze_verify() {
    let root = verify_root();
    let etc = root.path().join("etc/systemd/system");
    for unit in ["candidates-logrotate.service", "candidates-logrotate.timer"] {
        fs::copy(packer_dir().join("files").join(unit), etc.join(unit)).expect("copy the unit");
    }
    let logrotate = root.path().join("usr/sbin/logrotate");
    fs::create_dir_all(logrotate.parent().expect("a folder")).expect("create usr/sbin");
    fs::write(&logrotate, "#!/bin/sh\nexit 0\n").expect("write the stand-in");
    fs::set_permissions(&logrotate, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    assert_verify_is_clean(
        root.path(),
        &["candidates-logrotate.service", "candidates-logrotate.timer"],
    );
}

/// The shipped rotation, run by the real logrotate on a copy of its configuration pointed
/// at a temporary file: a file over the size limit is copied away and truncated in place
/// (systemd keeps the file open, the agent keeps following it); one under it is left alone.
#[test]
fn the_service_log_file_is_rotated_in_place_when_it_grows_large() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("service.log");
    let config = fs::read_to_string(packer_dir().join("files/candidates-logrotate.conf"))
        .expect("read the rotation's configuration");
    assert!(
        config.contains("/var/log/candidates/service.log {"),
        "{config}"
    );
    let config_path = dir.path().join("logrotate.conf");
    fs::write(
        &config_path,
        config.replace(
            "/var/log/candidates/service.log",
            &log.display().to_string(),
        ),
    )
    .expect("write the copy");
    let rotate = || {
        let output = Command::new(tool("logrotate"))
            .arg("--state")
            .arg(dir.path().join("status"))
            .arg(&config_path)
            .output()
            .expect("run logrotate");
        assert!(
            output.status.success(),
            "logrotate: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };

    fs::write(&log, "{\"message\":\"small\"}\n").expect("write a small log");
    rotate();
    assert!(fs::read_to_string(&log).expect("log").contains("small"));
    assert!(
        !dir.path().join("service.log.1.gz").exists(),
        "a small file stays"
    );

    // Over the limit (a sparse file: its size is what logrotate looks at).
    let file = fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open the log");
    file.set_len(60 * 1024 * 1024).expect("grow the log");
    let inode = fs::metadata(&log).expect("stat").ino();
    rotate();
    let after = fs::metadata(&log).expect("the log is still there");
    assert_eq!(after.len(), 0, "truncated in place");
    assert_eq!(
        after.ino(),
        inode,
        "the same file: systemd's descriptor still writes to it"
    );
    assert!(
        dir.path().join("service.log.1.gz").is_file(),
        "the copy, compressed"
    );
}

/// packer/scripts/seal.sh, run for real on a stand-in machine-id file with a stand-in
/// cloud-init that records its arguments: the id is emptied, not removed, and cloud-init's
/// state and logs are cleaned.
#[test]
fn seal_empties_the_machine_id_and_cleans_cloud_init() {
    let dir = tempfile::tempdir().expect("temp dir");
    let machine_id = dir.path().join("machine-id");
    fs::write(&machine_id, "0123456789abcdef0123456789abcdef\n").expect("write a machine-id");
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).expect("bin folder");
    let recorded = dir.path().join("cloud-init.args");
    fs::write(
        bin.join("cloud-init"),
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", recorded.display()),
    )
    .expect("write the stand-in cloud-init");
    fs::set_permissions(bin.join("cloud-init"), fs::Permissions::from_mode(0o755))
        .expect("chmod 0755");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg(packer_dir().join("scripts/seal.sh"))
        .env("MACHINE_ID_FILE", &machine_id)
        .env("PATH", path)
        .output()
        .expect("run seal.sh");
    assert!(
        output.status.success(),
        "seal.sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let left = fs::metadata(&machine_id).expect("the machine-id file is still there");
    assert_eq!(left.len(), 0, "emptied");
    assert_eq!(
        fs::read_to_string(&recorded).expect("cloud-init ran"),
        "clean --logs\n"
    );

    // Without cloud-init, the image could not configure itself: refused.
    let output = Command::new("bash")
        .arg(packer_dir().join("scripts/seal.sh"))
        .env("MACHINE_ID_FILE", &machine_id)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run seal.sh");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cloud-init is not installed"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
