//! The unprivileged user the rootless tests run as (`vessel-rootless-test`),
//! made on first use, and its subordinate id ranges in /etc/subuid and
//! /etc/subgid (useradd's, or 65536 ids at 3,000,000 added by `subid_start`:
//! far from useradd's and the tenant tests' ranges).

use std::fs;
use std::process::Command;
use std::sync::OnceLock;

pub const USER: &str = "vessel-rootless-test";

/// The test user's (uid, gid); made when missing.
pub fn rootless_user() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        super::require_root();
        let have = Command::new("id")
            .args(["-u", USER])
            .output()
            .expect("run id");
        if !have.status.success() {
            let st = Command::new("useradd")
                .args(["-M", "-s", "/usr/sbin/nologin", USER])
                .status()
                .expect("run useradd");
            // Another test binary may have made it meanwhile.
            let again = Command::new("id").args(["-u", USER]).output();
            assert!(
                st.success() || again.is_ok_and(|o| o.status.success()),
                "useradd {USER} failed"
            );
        }
        let id = |flag: &str| -> u32 {
            let o = Command::new("id")
                .args([flag, USER])
                .output()
                .expect("run id");
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .expect("numeric id")
        };
        (id("-u"), id("-g"))
    })
}

/// The test user's first subordinate range of 65536 ids or more in `file`,
/// added with usermod when missing.
pub fn subid_start(file: &str, usermod_flag: &str) -> u32 {
    let find = || -> Option<u32> {
        fs::read_to_string(file)
            .ok()?
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.trim().split(':').collect();
                match f.as_slice() {
                    [name, start, count] if *name == USER => {
                        let c: u32 = count.parse().ok()?;
                        (c >= 65536).then(|| start.parse().ok()).flatten()
                    }
                    _ => None,
                }
            })
            .next()
    };
    if let Some(s) = find() {
        return s;
    }
    let st = Command::new("usermod")
        .args([usermod_flag, "3000000-3065535", USER])
        .status()
        .expect("run usermod");
    assert!(st.success(), "usermod {usermod_flag} for {USER} failed");
    find().expect("subordinate range after usermod")
}
