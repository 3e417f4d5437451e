//! The .deb and .rpm built by packaging/build.sh: installed with dpkg, the agent is where
//! Pacemaker and pcs look; ocf-tester passes on the installed files; the man page renders;
//! removal leaves nothing under resource.d; the .rpm carries the same files and modes.
//!
//! tests/run-all.sh builds the packages first and sets VIPSEC_REQUIRE_PACKAGES=1; a plain
//! `cargo test` without built packages says so and checks nothing here.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn built(dir: &str, ext: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == ext) && p.to_string_lossy().contains("vipsec")
        })
        .collect();
    found.sort();
    found.pop()
}

fn package(dir: &str, ext: &str) -> Option<PathBuf> {
    let p = built(dir, ext);
    if p.is_none() {
        assert!(
            std::env::var_os("VIPSEC_REQUIRE_PACKAGES").is_none(),
            "no .{ext} under {dir}: packaging/build.sh did not produce one"
        );
        println!("skipped: no .{ext} built (run packaging/build.sh, or tests/run-all.sh)");
    }
    p
}

fn out(cmd: &str) -> String {
    let o = sh(cmd);
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// path -> mode (octal, permission bits) of the regular files a package installs.
fn deb_files(deb: &std::path::Path) -> BTreeMap<String, String> {
    // "-rwxr-xr-x root/root 2855912 2026-11-25 08:20 ./usr/sbin/vipsec"
    must(&format!("dpkg-deb -c {}", deb.display()))
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            let perms = l.split_whitespace().next()?;
            let path = l
                .split_whitespace()
                .last()?
                .trim_start_matches('.')
                .to_string();
            Some((path, perm_octal(perms)))
        })
        .filter(|(p, _)| {
            !p.starts_with("/usr/share/doc/vipsec/changelog")
                && p != "/usr/share/doc/vipsec/copyright"
        })
        .collect()
}

fn perm_octal(p: &str) -> String {
    let bits: u32 = p[1..10]
        .chars()
        .enumerate()
        .map(|(i, c)| if c == '-' { 0 } else { 1 << (8 - i) })
        .sum();
    format!("{bits:o}")
}

#[test]
fn deb_installs_where_pacemaker_and_pcs_find_it_and_removes_cleanly() {
    let Some(deb) = package("target/debian", "deb") else {
        return;
    };
    struct Installed;
    impl Drop for Installed {
        fn drop(&mut self) {
            let _ = sh("dpkg -r vipsec >/dev/null 2>&1");
        }
    }
    must(&format!("dpkg -i {}", deb.display()));
    let _installed = Installed;
    let owned = must("dpkg -L vipsec");
    for path in [
        "/usr/sbin/vipsec",
        "/usr/lib/ocf/resource.d/vipsec/ipsec",
        "/usr/share/man/man8/vipsec.8.gz",
        "/usr/lib/tmpfiles.d/vipsec.conf",
        "/usr/share/doc/vipsec/README.md",
        "/usr/share/doc/vipsec/SECURITY.md",
        "/usr/share/doc/vipsec/docs/mesh.md",
    ] {
        assert!(
            owned.lines().any(|l| l == path),
            "{path} not in the package:\n{owned}"
        );
    }
    assert!(
        owned
            .lines()
            .any(|l| l == "/usr/lib/ocf/resource.d/vipsec/mesh"),
        "{owned}"
    );
    let mesh_meta = must("crm_resource --show-metadata ocf:vipsec:mesh");
    assert!(
        mesh_meta.contains("<resource-agent name=\"mesh\"")
            && mesh_meta.contains("<parameter name=\"peers\""),
        "{mesh_meta}"
    );
    let mesh_describe = out("pcs resource describe ocf:vipsec:mesh");
    assert!(
        mesh_describe.contains("ocf:vipsec:mesh - IPsec between this node and every peer"),
        "{mesh_describe}"
    );
    let meta = must("crm_resource --show-metadata ocf:vipsec:ipsec");
    assert!(
        meta.contains("<resource-agent name=\"ipsec\"")
            && meta.contains("<parameter name=\"tunnel\""),
        "{meta}"
    );
    let describe = out("pcs resource describe ocf:vipsec:ipsec");
    assert!(
        describe.contains("ocf:vipsec:ipsec - IPsec road-warrior tunnel that follows a virtual IP"),
        "{describe}"
    );
    assert!(
        describe.contains("  tunnel (required): Name of the libreswan conn"),
        "{describe}"
    );
    assert!(
        describe.contains("  fallbacktunnel: Name of a conn that stop initiates"),
        "{describe}"
    );
    let list = out("pcs resource list ocf:vipsec");
    assert!(
        list.contains("ocf:vipsec:ipsec") && list.contains("ocf:vipsec:mesh"),
        "{list}"
    );
    let man = out("MANWIDTH=80 man -P cat vipsec 2>&1");
    let squashed = man.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squashed.contains("NAME vipsec - IPsec tunnels for Pacemaker clusters"),
        "man vipsec:\n{man}"
    );
    assert!(out("MANWIDTH=80 man -P cat vipsec-monitor").contains("--check-level"));

    // ocf-tester against the installed entry, with pluto running in a namespace.
    let lab = Lab::new("192.0.2.90");
    lab.add_vip();
    let conf = |p: &std::path::Path| p.display().to_string();
    let options = [
        ("tunnel", "rw".to_string()),
        ("vip", "192.0.2.90".to_string()),
        ("confdir", conf(&lab.pluto.confdir)),
        ("ctlsocket", conf(&lab.pluto.ctlsocket)),
    ];
    let ipsec = std::path::Path::new("/usr/lib/ocf/resource.d/vipsec/ipsec");
    assert_ocf_tester_passes(
        &lab.ns,
        ipsec,
        "pkg",
        &options,
        &lab.state_dir,
        &lab.run_dir,
    );

    // The same for the installed mesh entry (policy=disable: this kernel cannot install
    // the ESP SAs that would make use/require report every peer up).
    let key = lab.tmp.path().join("mesh.key");
    std::fs::write(&key, "packaged mesh master secret 0123456789abcdef").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let options = [
        ("peers", "192.0.2.90 192.0.2.91".to_string()),
        ("policy", "disable".to_string()),
        ("secret_file", conf(&key)),
        ("confdir", conf(&lab.pluto.confdir)),
        ("ctlsocket", conf(&lab.pluto.ctlsocket)),
    ];
    let mesh = std::path::Path::new("/usr/lib/ocf/resource.d/vipsec/mesh");
    assert_ocf_tester_passes(
        &lab.ns,
        mesh,
        "pkgmesh",
        &options,
        &lab.state_dir,
        &lab.run_dir,
    );

    must("dpkg -r vipsec");
    assert!(
        !std::path::Path::new("/usr/lib/ocf/resource.d/vipsec").exists(),
        "dpkg -r left /usr/lib/ocf/resource.d/vipsec behind"
    );
    assert!(!std::path::Path::new("/usr/sbin/vipsec").exists());
}

#[test]
fn rpm_has_the_debs_files_modes_and_dependencies() {
    let Some(rpm) = package("target/generate-rpm", "rpm") else {
        return;
    };
    let deb = built("target/debian", "deb").expect("the .deb is built with the .rpm");
    // "path size mtime digest mode owner group isconfig isdoc rdev symlink"
    let rpm_files: BTreeMap<String, String> = must(&format!("rpm -qp --dump {}", rpm.display()))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let mode = u32::from_str_radix(f.get(4)?, 8).ok()?;
            (mode & 0o170000 == 0o100000)
                .then(|| (f[0].to_string(), format!("{:o}", mode & 0o7777)))
        })
        .collect();
    assert_eq!(
        rpm_files,
        deb_files(&deb),
        "the .rpm and the .deb install different files or modes"
    );
    assert_eq!(
        rpm_files.get("/usr/sbin/vipsec").map(String::as_str),
        Some("755")
    );
    assert_eq!(
        rpm_files
            .get("/usr/lib/ocf/resource.d/vipsec/ipsec")
            .map(String::as_str),
        Some("755")
    );
    let requires = must(&format!("rpm -qp --requires {}", rpm.display()));
    assert!(
        requires
            .lines()
            .any(|l| l.trim() == "(libreswan or strongswan)"),
        "{requires}"
    );
    let recommends = must(&format!("rpm -qp --recommends {}", rpm.display()));
    assert!(
        recommends.contains("pacemaker") && recommends.contains("resource-agents"),
        "{recommends}"
    );
    let control = must(&format!(
        "dpkg-deb -f {} Depends Recommends Version",
        deb.display()
    ));
    assert!(
        control.contains("Depends: ")
            && control.contains("libreswan | strongswan-charon | charon-systemd")
            && control.contains("pacemaker, resource-agents"),
        "{control}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        control.contains(&format!("Version: {version}")),
        "{control}"
    );
    assert!(must(&format!("rpm -qp --qf '%{{VERSION}}' {}", rpm.display())).trim() == version);
}
