//! What goes into the AMI: the release binary (runs on Amazon Linux 2023's glibc), the
//! systemd unit (valid, hardened, restarting, and running for real under systemd), the
//! rotation of its log file, the seal that clears the build instance's identity, and the
//! Packer template that bakes them. Where the unit must agree with the launch template's
//! user data or the service's timings, the check is in `cross_layer.rs`.
//!
//! Tools: `readelf` (binutils), `systemd-analyze` (systemd) and `logrotate`. The release
//! binary comes from `scripts/build_release.sh` (or `$CANDIDATES_RELEASE_BIN`).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use blackbox::hcl_files::{Module, labels, reference, required};
use blackbox::systemd_unit::{parse_timespan, unit, unit_path};
use blackbox::{repo_root, tool};
use hcl::Expression;

// 6. The log shipping's rotation and the image's seal.
#[path = "packaging/seal_and_rotation.rs"]
mod seal_and_rotation;

/// Amazon Linux 2023's glibc: the newest symbol version the binary may need.
const MAX_GLIBC: (u32, u32) = (2, 34);
/// The worst `systemd-analyze security` exposure the unit may have (0 best, 10 worst).
const MAX_EXPOSURE: f64 = 2.5;

fn packer_dir() -> PathBuf {
    repo_root().join("packer")
}

// ---------------------------------------------------------------------------------------
// 1. The release binary
// ---------------------------------------------------------------------------------------

fn release_binary() -> PathBuf {
    let path = std::env::var_os("CANDIDATES_RELEASE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("dist/candidates"));
    assert!(
        path.is_file(),
        "no release binary at {}: build it with scripts/build_release.sh \
         (or point CANDIDATES_RELEASE_BIN at one)",
        path.display()
    );
    path
}

/// Every `GLIBC_x.y[.z]` symbol version named in `readelf -V` output, as (major, minor);
/// a patch level only matters for equal (major, minor), which the limit does not need.
fn glibc_versions(readelf_output: &str) -> BTreeSet<(u32, u32)> {
    let mut found = BTreeSet::new();
    for (index, _) in readelf_output.match_indices("GLIBC_") {
        let rest = &readelf_output[index + "GLIBC_".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let mut parts = rest[..end].split('.').map(str::parse::<u32>);
        // GLIBC_PRIVATE and friends have no number: not a version requirement.
        if let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) {
            found.insert((major, minor));
        }
    }
    found
}

/// Whether the file starts with a 64-bit little-endian ELF header for x86-64.
fn is_x86_64_elf(header: &[u8]) -> bool {
    const EM_X86_64: u16 = 62;
    header.len() >= 20
        && header[..4] == *b"\x7fELF"
        && header[4] == 2 // ELFCLASS64
        && header[5] == 1 // ELFDATA2LSB
        && u16::from_le_bytes([header[18], header[19]]) == EM_X86_64
}

#[test]
fn release_binary_runs_on_amazon_linux_2023_glibc() {
    let binary = release_binary();
    let bytes = fs::read(&binary).expect("read the release binary");
    assert!(
        is_x86_64_elf(&bytes),
        "{} is not an x86-64 ELF executable; the AMI is x86_64",
        binary.display()
    );

    let output = Command::new(tool("readelf"))
        .args(["-V", "--wide"])
        .arg(&binary)
        .output()
        .expect("run readelf");
    assert!(
        output.status.success(),
        "readelf -V failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let versions = glibc_versions(&String::from_utf8_lossy(&output.stdout));
    let newest = versions.last().copied().unwrap_or_else(|| {
        panic!(
            "{} names no GLIBC_ symbol version: not a glibc binary, or readelf's output changed",
            binary.display()
        )
    });
    assert!(
        newest <= MAX_GLIBC,
        "{} needs GLIBC_{}.{}, newer than Amazon Linux 2023's {}.{}: build it with \
         scripts/build_release.sh (cargo zigbuild for glibc 2.34), not a plain cargo build",
        binary.display(),
        newest.0,
        newest.1,
        MAX_GLIBC.0,
        MAX_GLIBC.1
    );
}

/// The `key = value` lines of one `[section]` of a TOML file written one key a line, as
/// the workspace's Cargo.toml is.
fn toml_section(text: &str, section: &str) -> HashMap<String, String> {
    let header = format!("[{section}]");
    text.lines()
        .skip_while(|line| line.trim() != header)
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            (!key.trim_start().starts_with('#'))
                .then(|| (key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// The binary the AMI ships is built with the `dist` profile (fat LTO, one codegen unit);
/// the criterion floors are measured the same way (the `bench` profile, which cannot
/// inherit from dist); `cargo run --release`, the README's first command, stays light.
#[test]
fn the_shipped_binary_is_built_and_benchmarked_with_the_dist_profile() {
    let manifest = fs::read_to_string(repo_root().join("Cargo.toml")).expect("Cargo.toml");
    let dist = toml_section(&manifest, "profile.dist");
    let bench = toml_section(&manifest, "profile.bench");
    let release = toml_section(&manifest, "profile.release");
    assert_eq!(
        dist.get("inherits").map(String::as_str),
        Some(r#""release""#),
        "{dist:?}"
    );
    assert_eq!(dist.get("lto").map(String::as_str), Some(r#""fat""#));
    assert_eq!(dist.get("codegen-units").map(String::as_str), Some("1"));
    for key in ["lto", "codegen-units", "opt-level", "strip", "panic"] {
        let shipped = dist.get(key).or_else(|| release.get(key));
        assert_eq!(
            bench.get(key),
            shipped,
            "[profile.bench] {key} must match the shipped binary's"
        );
    }
    assert!(
        !release.contains_key("lto") && !release.contains_key("codegen-units"),
        "the release profile is for a quick first `cargo run --release`: {release:?}"
    );
    // The release profile optimises some dependencies less to build quickly; a custom
    // profile inherits those settings, so the shipped and the benchmarked binaries must
    // put every one of them back to full speed.
    let lowered: Vec<&str> = manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("[profile.release.package."))
        .filter_map(|rest| rest.strip_suffix(']'))
        .collect();
    assert!(!lowered.is_empty(), "no per-package release settings found");
    for package in lowered {
        for profile in ["dist", "bench"] {
            let restored = toml_section(&manifest, &format!("profile.{profile}.package.{package}"));
            assert_eq!(
                restored.get("opt-level").map(String::as_str),
                Some("3"),
                "[profile.{profile}.package.{package}] must put opt-level back to 3"
            );
        }
    }

    let script =
        |name: &str| fs::read_to_string(repo_root().join("scripts").join(name)).expect("a script");
    let build = script("build_release.sh");
    assert!(
        build.contains("cargo zigbuild --profile dist")
            && build.contains("$RUST_TARGET/dist/candidates"),
        "build_release.sh must build and ship the dist profile's binary"
    );
    let bench_script = script("bench.sh");
    assert!(
        bench_script.contains("cargo build --quiet --profile dist -p candidates")
            && bench_script.contains("/dist/candidates"),
        "bench.sh must measure the dist profile's binary"
    );
    let rehearse = script("rehearse.sh");
    assert!(
        rehearse.contains("--profile dist -p candidates")
            && !rehearse.contains("release/candidates"),
        "rehearse.sh must calibrate on the dist profile's binary"
    );
}

#[test]
fn glibc_version_parser_finds_the_newest_requirement() {
    // Abridged `readelf -V --wide` of a binary built on a newer distribution.
    let sample = "\
Version needs section '.gnu.version_r' contains 2 entries:
 Addr: 0x0000000000001234  Offset: 0x001234  Link: 7 (.dynstr)
  000000: Version: 1  File: libc.so.6  Cnt: 4
  0x0010:   Name: GLIBC_2.38  Flags: none  Version: 9
  0x0020:   Name: GLIBC_2.3.4  Flags: none  Version: 8
  0x0030:   Name: GLIBC_PRIVATE  Flags: none  Version: 7
  0x0040:   Name: GLIBC_2.2.5  Flags: none  Version: 2
  000050: Version: 1  File: libgcc_s.so.1  Cnt: 1
  0x0060:   Name: GCC_3.0  Flags: none  Version: 3
";
    let versions = glibc_versions(sample);
    assert_eq!(
        versions,
        BTreeSet::from([(2, 2), (2, 3), (2, 38)]),
        "GLIBC_PRIVATE and GCC_ are no glibc versions"
    );
    let newest = versions.last().copied().expect("a version");
    assert!(newest > MAX_GLIBC, "2.38 must exceed the 2.34 limit");
    // Numeric, not lexical, order: 2.4 < 2.34.
    assert_eq!(
        glibc_versions("GLIBC_2.4 GLIBC_2.34").last(),
        Some(&(2, 34))
    );
    assert!(is_x86_64_elf(
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0"
    ));
    assert!(
        !is_x86_64_elf(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\xb7\0"),
        "aarch64"
    );
}

// ---------------------------------------------------------------------------------------
// 2.-4. The systemd unit
// ---------------------------------------------------------------------------------------

/// A throw-away root for `systemd-analyze verify --root`: the unit, a stand-in for the
/// binary at its ExecStart path (verify checks that it is executable), and this
/// machine's own system units (the targets the unit orders itself against).
fn verify_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    let system_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|dir| dir.join("sysinit.target").is_file())
        .unwrap_or_else(|| {
            panic!("no systemd unit folder with sysinit.target: run ./scripts/test.sh (installs systemd)")
        });
    let units = root.path().join("usr/lib/systemd");
    fs::create_dir_all(&units).expect("create usr/lib/systemd");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(system_units)
        .arg(&units)
        .status()
        .expect("run cp");
    assert!(copied.success(), "cannot copy {}", system_units.display());

    let etc = root.path().join("etc/systemd/system");
    fs::create_dir_all(&etc).expect("create etc/systemd/system");
    fs::copy(unit_path(), etc.join("candidates.service")).expect("copy the unit");

    let exec_start = unit().get("Service", "ExecStart").to_owned();
    let program = exec_start
        .split_whitespace()
        .next()
        .expect("ExecStart names a program");
    let stand_in = root
        .path()
        .join(program.trim_start_matches(['@', '-', ':', '+', '!', '/']));
    fs::create_dir_all(stand_in.parent().expect("a folder")).expect("create the binary's folder");
    fs::write(&stand_in, "#!/bin/sh\nexit 0\n").expect("write the stand-in binary");
    fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    root
}

/// `systemd-analyze verify` of `units` in `root` says nothing and succeeds.
#[track_caller]
fn assert_verify_is_clean(root: &Path, units: &[&str]) {
    let output = Command::new(tool("systemd-analyze"))
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(units)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "systemd-analyze verify is not clean for {units:?} (packer/files/, exit {:?}):\n{said}",
        output.status.code()
    );
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let root = verify_root();
    assert_verify_is_clean(root.path(), &["candidates.service"]);
}

/// The number in "→ Overall exposure level for candidates.service: 1.2 OK 🙂".
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|line| line.contains("Overall exposure level"))?;
    let (_, after) = line.rsplit_once(':')?;
    after.split_whitespace().next()?.parse().ok()
}

#[test]
fn unit_exposure_is_low() {
    let output = Command::new(tool("systemd-analyze"))
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit_path())
        .env("SYSTEMD_COLORS", "0")
        .output()
        .expect("run systemd-analyze security");
    let report = String::from_utf8_lossy(&output.stdout);
    let exposure = overall_exposure(&report).unwrap_or_else(|| {
        panic!(
            "no overall exposure in systemd-analyze security's output (exit {:?}):\n{report}\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let weak: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with('✗'))
        .collect();
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} exceeds {MAX_EXPOSURE}: restore the hardening of \
         packer/files/candidates.service. Open points:\n{}",
        weak.join("\n")
    );
}

#[test]
fn exposure_parser_reads_the_overall_line() {
    let report = "✗ PrivateNetwork=   Service has access to the host's network   0.5\n\
                  → Overall exposure level for candidates.service: 9.6 UNSAFE 😨\n";
    assert_eq!(overall_exposure(report), Some(9.6));
    assert_eq!(overall_exposure("nothing here"), None);
}

/// The unit runs the installed binary, restarts it, keeps its state where the service
/// expects it and confines it. (Its user, environment file and stop timings agree with the
/// user data and the service: `cross_layer.rs`.)
#[test]
fn unit_runs_the_binary_confined_and_restarts_it() {
    let unit = unit();
    let exec_start = unit.get("Service", "ExecStart");
    assert_eq!(
        exec_start.split_whitespace().next(),
        Some("/usr/local/bin/candidates")
    );
    assert_eq!(unit.get("Service", "Restart"), "always");
    let restart_sec = parse_timespan(unit.get("Service", "RestartSec"));
    assert!(
        (Duration::from_millis(500)..=Duration::from_secs(30)).contains(&restart_sec),
        "RestartSec {restart_sec:?}: neither a busy loop nor a long outage"
    );

    assert_eq!(unit.get("Service", "StateDirectory"), "candidates");
    assert_eq!(
        unit.get("Service", "WorkingDirectory"),
        "/var/lib/candidates"
    );
    let nofile: u64 = unit
        .get("Service", "LimitNOFILE")
        .split(':')
        .next()
        .and_then(|soft| soft.parse().ok())
        .expect("LimitNOFILE is a number");
    assert!(
        nofile >= 65_536,
        "LimitNOFILE {nofile} is low for a web server"
    );
    assert_eq!(unit.get("Service", "CapabilityBoundingSet"), "");
    assert_eq!(unit.get("Service", "NoNewPrivileges"), "yes");
    assert_eq!(unit.get("Service", "MemoryDenyWriteExecute"), "yes");
    assert!(
        unit.all("Install", "WantedBy")
            .contains(&"multi-user.target")
    );
}

#[test]
fn unit_lets_the_service_lower_its_threads_priority_and_nothing_more() {
    let unit = unit();
    let filters = unit.all("Service", "SystemCallFilter");
    assert!(!filters.is_empty(), "the unit has no system call filter");
    assert!(
        !filters[0].starts_with('~'),
        "the first SystemCallFilter= must be an allow list"
    );

    // Replay the filter lines in order, as systemd does: the first allow list sets the
    // allowed calls, later lines add to it, lines starting with ~ take away.
    let mut groups = HashMap::new();
    let mut allowed = BTreeSet::new();
    for line in filters {
        let (deny, items) = match line.strip_prefix('~') {
            Some(items) => (true, items),
            None => (false, line),
        };
        for item in items.split_whitespace() {
            let name = item.split(':').next().unwrap_or(item);
            let calls = expand_syscall_group(name, &mut groups);
            if deny {
                allowed.retain(|call| !calls.contains(call));
            } else {
                allowed.extend(calls);
            }
        }
    }
    assert!(
        allowed.contains("setpriority"),
        "setpriority is filtered out: the computation threads could not drop to nice 10"
    );
    for forbidden in [
        "setuid",
        "mount",
        "reboot",
        "sched_setscheduler",
        "setrlimit",
        "init_module",
    ] {
        assert!(
            !allowed.contains(forbidden),
            "{forbidden} must stay filtered out"
        );
    }
    assert!(
        allowed.contains("accept4") && allowed.contains("epoll_wait"),
        "a server needs these"
    );
}

/// The system calls of `@group` (recursively) as `systemd-analyze syscall-filter` lists
/// them, or the single call `name`.
fn expand_syscall_group(
    name: &str,
    cache: &mut HashMap<String, BTreeSet<String>>,
) -> BTreeSet<String> {
    if !name.starts_with('@') {
        return BTreeSet::from([name.to_owned()]);
    }
    if let Some(calls) = cache.get(name) {
        return calls.clone();
    }
    let output = Command::new(tool("systemd-analyze"))
        .args(["syscall-filter", "--no-pager", name])
        .output()
        .expect("run systemd-analyze syscall-filter");
    assert!(output.status.success(), "unknown system call group {name}");
    let mut calls = BTreeSet::new();
    for line in String::from_utf8_lossy(&output.stdout).lines().skip(1) {
        let entry = line.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        calls.extend(expand_syscall_group(entry, cache));
    }
    assert!(!calls.is_empty(), "{name} expanded to no system call");
    cache.insert(name.to_owned(), calls.clone());
    calls
}

#[test]
fn timespan_parser_understands_systemd_units() {
    assert_eq!(parse_timespan("90"), Duration::from_secs(90));
    assert_eq!(parse_timespan("90s"), Duration::from_secs(90));
    assert_eq!(parse_timespan("1min 30s"), Duration::from_secs(90));
    assert_eq!(parse_timespan("2m"), Duration::from_secs(120));
    assert_eq!(parse_timespan("500ms"), Duration::from_millis(500));
}

// ---------------------------------------------------------------------------------------
// 5. The Packer template
// ---------------------------------------------------------------------------------------

/// A file path in the template, with `${path.root}` standing for packer/.
fn template_path(template: &Module, expr: &Expression) -> PathBuf {
    let text = template.text(expr);
    let root = packer_dir();
    PathBuf::from(text.replace("${path.root}", &root.to_string_lossy()))
}

#[test]
fn packer_template_builds_the_ami_the_stack_expects() {
    let template = Module::packer(&packer_dir());

    // Plugin.
    let packer = template.one_block("packer", &[]);
    let plugins = packer
        .body()
        .blocks()
        .find(|b| b.identifier() == "required_plugins")
        .expect("packer { required_plugins { } }");
    let amazon = template.object(required(plugins.body(), "amazon"));
    assert_eq!(
        amazon["source"],
        Expression::from("github.com/hashicorp/amazon")
    );
    assert!(
        amazon.contains_key("version"),
        "pin the amazon plugin's version"
    );

    // Builder.
    let source = template.one_block("source", &["amazon-ebs"]);
    assert_eq!(
        required(source.body(), "imds_support"),
        &Expression::from("v2.0")
    );
    assert_eq!(
        required(source.body(), "ssh_username"),
        &Expression::from("ec2-user")
    );
    let metadata = source
        .body()
        .blocks()
        .find(|b| b.identifier() == "metadata_options")
        .expect("metadata_options for the build instance");
    assert_eq!(
        required(metadata.body(), "http_tokens"),
        &Expression::from("required")
    );

    // Base image: the newest Amazon Linux 2023 x86_64 image published by Amazon.
    let base =
        reference(required(source.body(), "source_ami")).expect("source_ami names a data source");
    let label = base
        .strip_prefix("data.amazon-ami.")
        .and_then(|rest| rest.strip_suffix(".id"))
        .unwrap_or_else(|| panic!("source_ami is {base}, not data.amazon-ami.<name>.id"));
    let lookup = template.one_block("data", &["amazon-ami", label]);
    assert_eq!(
        required(lookup.body(), "owners"),
        &Expression::Array(vec![Expression::from("amazon")])
    );
    assert_eq!(
        required(lookup.body(), "most_recent"),
        &Expression::Bool(true)
    );
    let filters = template.object(required(lookup.body(), "filters"));
    let name_filter = template.text(filters.get("name").expect("a name filter"));
    assert!(
        name_filter.starts_with("al2023-ami-2023.") && name_filter.ends_with("-x86_64"),
        "name filter {name_filter:?} does not select Amazon Linux 2023 x86_64 (nor minimal)"
    );

    // One local for the AMI's name and its Name tag, built from one timestamp.
    let ami_name = required(source.body(), "ami_name");
    let ami_local = reference(ami_name).unwrap_or_default();
    let name_text = template.text(ami_name);
    assert!(
        ami_local.starts_with("local.")
            && name_text.starts_with("${var.project}-")
            && name_text.contains("formatdate(")
            && name_text.contains("timestamp()"),
        "ami_name should be a local \"<var.project>-<formatdate(timestamp())>\", is {ami_name} = {name_text}"
    );

    let tags = template.object(required(source.body(), "tags"));
    assert_eq!(
        tags.get("Name"),
        Some(ami_name),
        "the Name tag must be the AMI's name local"
    );
    // The project comes from the variable apply.sh sets (AXUM_ASG_PROJECT), never a literal:
    // destroy.sh finds the AMIs by this tag.
    assert_eq!(
        tags.get("Project").and_then(reference).as_deref(),
        Some("var.project")
    );
    assert_eq!(
        reference(&tags["GitRevision"]).as_deref(),
        Some("var.git_revision")
    );
    assert_eq!(
        reference(&tags["InputsHash"]).as_deref(),
        Some("var.inputs_hash")
    );
    let run_tags = template.object(required(source.body(), "run_tags"));
    assert_eq!(
        run_tags.get("Project").and_then(reference).as_deref(),
        Some("var.project")
    );

    let variables: BTreeSet<String> = template
        .blocks("variable", &[])
        .into_iter()
        .map(|b| labels(b)[0].to_owned())
        .collect();
    for needed in [
        "git_revision",
        "inputs_hash",
        "region",
        "instance_type",
        "subnet_id",
        "project",
    ] {
        assert!(
            variables.contains(needed),
            "variable \"{needed}\" is not declared"
        );
    }
    assert_eq!(
        reference(required(source.body(), "subnet_id")).as_deref(),
        Some("var.subnet_id")
    );

    // Encrypted gp3 root volume.
    let root_volume = source
        .body()
        .blocks()
        .find(|b| {
            b.identifier() == "launch_block_device_mappings"
                && required(b.body(), "device_name") == &Expression::from("/dev/xvda")
        })
        .expect("launch_block_device_mappings for the root device /dev/xvda");
    assert_eq!(
        required(root_volume.body(), "encrypted"),
        &Expression::Bool(true)
    );
    assert_eq!(
        required(root_volume.body(), "volume_type"),
        &Expression::from("gp3")
    );
    assert_eq!(
        required(root_volume.body(), "delete_on_termination"),
        &Expression::Bool(true)
    );

    // Provisioners: the unit this suite checks, the binary, the install script.
    let build = template.one_block("build", &[]);
    // (source as written with locals resolved, destination)
    let uploads: Vec<(String, String)> = build
        .body()
        .blocks()
        .filter(|b| {
            b.identifier() == "provisioner"
                && labels(b) == ["file"]
                && b.body().attributes().any(|a| a.key() == "source")
        })
        .map(|b| {
            (
                template.text(required(b.body(), "source")),
                template.text(required(b.body(), "destination")),
            )
        })
        .collect();
    let unit_file = fs::canonicalize(unit_path()).expect("the unit exists");
    let unit_upload = uploads
        .iter()
        .find(|(source, _)| {
            let path = source.replace("${path.root}", &packer_dir().to_string_lossy());
            fs::canonicalize(path).ok().as_ref() == Some(&unit_file)
        })
        .unwrap_or_else(|| {
            panic!("no file provisioner uploads packer/files/candidates.service: {uploads:?}")
        });
    assert!(
        unit_upload.1.ends_with("/candidates.service"),
        "unit uploaded as {}",
        unit_upload.1
    );
    let binary_upload = uploads
        .iter()
        .find(|(_, destination)| destination.ends_with("/candidates"))
        .expect("a file provisioner uploads the binary");
    assert!(
        binary_upload.0.contains("var.binary_path")
            && binary_upload.0.contains("${path.root}/../dist/candidates"),
        "the binary should come from var.binary_path, by default dist/candidates beside packer/: {}",
        binary_upload.0
    );

    let install = build
        .body()
        .blocks()
        .find(|b| {
            b.identifier() == "provisioner"
                && labels(b) == ["shell"]
                && b.body().attributes().any(|a| a.key() == "script")
        })
        .expect("a shell provisioner runs packer/scripts/install.sh");
    let script = template_path(&template, required(install.body(), "script"));
    assert_eq!(
        fs::canonicalize(&script).ok(),
        fs::canonicalize(packer_dir().join("scripts/install.sh")).ok(),
        "the shell provisioner runs {}",
        script.display()
    );
    assert!(
        template
            .text(required(install.body(), "execute_command"))
            .contains("sudo")
    );
    let install_text = fs::read_to_string(&script).expect("read install.sh");
    for step in [
        "systemctl enable candidates.service candidates-logrotate.timer",
        "/usr/local/bin/candidates",
        "useradd",
        "dnf -y --releasever=latest install amazon-cloudwatch-agent logrotate",
        "install -d -o root -g root -m 0750 \"$LOG_DIR\"",
    ] {
        assert!(install_text.contains(step), "install.sh does not {step}");
    }

    // The log shipping's files, uploaded together beside the unit, each one in packer/files.
    let shipping = build
        .body()
        .blocks()
        .find(|b| {
            b.identifier() == "provisioner"
                && labels(b) == ["file"]
                && b.body().attributes().any(|a| a.key() == "sources")
        })
        .expect("a file provisioner uploads the log shipping's files");
    let Expression::Array(sources) = required(shipping.body(), "sources") else {
        panic!("sources must be a list");
    };
    let uploaded: BTreeSet<String> = sources
        .iter()
        .map(|source| {
            let path = template_path(&template, source);
            assert!(path.is_file(), "{} is uploaded but missing", path.display());
            path.file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        uploaded,
        BTreeSet::from(
            [
                "cloudwatch-agent.json",
                "candidates-logrotate.conf",
                "candidates-logrotate.service",
                "candidates-logrotate.timer",
            ]
            .map(str::to_owned)
        )
    );
    for file in &uploaded {
        assert!(
            install_text.contains(&format!("\"$staging/{file}\"")),
            "install.sh does not install {file}"
        );
    }

    // The last provisioner seals the image: after it, nothing runs on the build instance.
    let last = build
        .body()
        .blocks()
        .rfind(|b| b.identifier() == "provisioner")
        .expect("provisioners");
    assert_eq!(labels(last), ["shell"]);
    assert_eq!(
        fs::canonicalize(template_path(&template, required(last.body(), "script"))).ok(),
        fs::canonicalize(packer_dir().join("scripts/seal.sh")).ok(),
        "the last provisioner runs packer/scripts/seal.sh"
    );
    assert!(
        template
            .text(required(last.body(), "execute_command"))
            .contains("sudo")
    );

    // Manifest, read by apply.sh.
    let manifest = build
        .body()
        .blocks()
        .find(|b| b.identifier() == "post-processor" && labels(b) == ["manifest"])
        .expect("a manifest post-processor");
    let output = template_path(&template, required(manifest.body(), "output"));
    assert_eq!(
        output,
        packer_dir().join("manifest.json"),
        "apply.sh reads packer/manifest.json"
    );
    assert_eq!(
        required(manifest.body(), "strip_path"),
        &Expression::Bool(true)
    );
    let custom = template.object(required(manifest.body(), "custom_data"));
    assert_eq!(
        reference(&custom["inputs_hash"]).as_deref(),
        Some("var.inputs_hash")
    );
    assert_eq!(
        reference(&custom["git_revision"]).as_deref(),
        Some("var.git_revision")
    );
}

/// The shipped unit under real systemd: scripts/check_unit_in_container.sh boots a
/// systemd-nspawn container with the unit and the release binary and checks, inside, that
/// the service answers, keeps its SQLite file in its state folder, runs its computation
/// threads at nice 10, runs unprivileged under seccomp, and on SIGTERM drains (503 on the
/// health path) and stops within its bounds with a clean result. It needs root:
/// ./scripts/test.sh leaves this test out, saying so loudly, when it is not root.
#[test]
fn unit_runs_under_real_systemd_in_a_container() {
    // The effective user, from /proc/self/status ("Uid: real effective saved fs").
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .expect("an effective uid");
    assert_eq!(
        effective, "0",
        "systemd-nspawn needs root: run ./scripts/test.sh as root (it leaves this test out otherwise)"
    );
    let binary = release_binary();
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/check_unit_in_container.sh"))
        .arg(&binary)
        .output()
        .expect("run check_unit_in_container.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the unit misbehaved under systemd:\n{stdout}\n{stderr}"
    );
    for check in [
        "PASS: GET /gtg = 200",
        "PASS: SQLite lives in the state folder",
        "PASS: user = candidates",
        "PASS: Seccomp (2 = filter) = 2",
        "PASS: nice of computation-",
        "PASS: GET /gtg while draining = 503",
        "PASS: stopped in ",
        "PASS: result after SIGTERM = success",
        "PASS: the service's JSON lines go to /var/log/candidates/service.log",
        "0 failed",
    ] {
        assert!(
            stdout.contains(check),
            "no '{check}' in:\n{stdout}\n{stderr}"
        );
    }
}
