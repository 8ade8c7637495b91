use super::*;

fn rule(json: &str) -> LinuxDeviceCgroup {
    serde_json::from_str(json).unwrap()
}

#[test]
fn device_rules_format_like_the_kernel_wants() {
    assert_eq!(
        device_rule(&rule(r#"{"allow":false,"access":"rwm"}"#)).unwrap(),
        "a *:* rwm"
    );
    assert_eq!(
        device_rule(&rule(
            r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}"#
        ))
        .unwrap(),
        "c 1:3 rw"
    );
    assert_eq!(
        device_rule(&rule(r#"{"allow":true,"type":"b","major":8}"#)).unwrap(),
        "b 8:* rwm"
    );
    // runc's update.bats uses "rwa": letters other than r, w, m are
    // dropped (the kernel refuses them with EINVAL), order normalised.
    assert_eq!(
        device_rule(&rule(
            r#"{"allow":false,"type":"c","major":1,"minor":11,"access":"rwa"}"#
        ))
        .unwrap(),
        "c 1:11 rw"
    );
    assert_eq!(
        device_rule(&rule(r#"{"allow":true,"type":"c","access":"mxr"}"#)).unwrap(),
        "c *:* rm"
    );
    assert_eq!(
        device_rule(&rule(r#"{"allow":true,"type":"c","access":""}"#)).unwrap(),
        "c *:* rwm"
    );
    assert!(device_rule(&rule(r#"{"allow":false,"type":"c","access":"a"}"#)).is_err());
}

/// A directory of plain files standing in for a cgroup: the knobs the
/// "kernel" has exist, the rest do not.
fn fake_cgroup(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vessel-cg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (f, v) in files {
        std::fs::write(dir.join(f), v).unwrap();
    }
    dir
}

fn memory(json: &str) -> LinuxMemory {
    serde_json::from_str(json).unwrap()
}

#[test]
fn swap_without_swap_accounting_follows_runc() {
    let dir = fake_cgroup(
        "noswap",
        &[("memory.limit_in_bytes", "9223372036854771712")],
    );
    // A real swap limit cannot be honoured: error naming the file.
    let e = set_memory(&dir, &memory(r#"{"limit": 1048576, "swap": 2097152}"#)).unwrap_err();
    assert!(e.to_string().contains("memory.memsw.limit_in_bytes"), "{e}");
    // Unlimited swap is what the host does anyway.
    set_memory(&dir, &memory(r#"{"limit": 1048576, "swap": -1}"#)).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("memory.limit_in_bytes")).unwrap(),
        "1048576"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn memory_and_swap_are_written_in_an_order_the_kernel_accepts() {
    let dir = fake_cgroup(
        "order",
        &[
            ("memory.limit_in_bytes", "1000"),
            ("memory.memsw.limit_in_bytes", "1000"),
        ],
    );
    // Growing: memsw first. The fake cannot refuse, so check the values.
    set_memory(&dir, &memory(r#"{"limit": 4000, "swap": 8000}"#)).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(read("memory.limit_in_bytes"), "4000");
    assert_eq!(read("memory.memsw.limit_in_bytes"), "8000");
    // limit -1 with swap unset: swap unlimited too (memsw exists here).
    set_memory(&dir, &memory(r#"{"limit": -1}"#)).unwrap();
    assert_eq!(read("memory.memsw.limit_in_bytes"), "-1");
    assert!(set_memory(&dir, &memory(r#"{"swappiness": 101}"#)).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn blkio_weight_uses_bfq_or_names_the_missing_file() {
    let b: LinuxBlockIo = serde_json::from_str(r#"{"weight": 300}"#).unwrap();
    let none = fake_cgroup("blk-none", &[]);
    let e = set_blkio(&none, &b).unwrap_err();
    assert!(matches!(e, CgroupError::Missing { .. }), "{e}");
    assert!(e.to_string().contains("blkio.weight"), "{e}");
    let bfq = fake_cgroup("blk-bfq", &[("blkio.bfq.weight", "100")]);
    set_blkio(&bfq, &b).unwrap();
    assert_eq!(
        std::fs::read_to_string(bfq.join("blkio.bfq.weight")).unwrap(),
        "300"
    );
    std::fs::remove_dir_all(&none).unwrap();
    std::fs::remove_dir_all(&bfq).unwrap();
}

fn state(rules: &[(bool, &str)]) -> DevState {
    let mut st = DevState::deny_all();
    for (a, r) in rules {
        st.apply(*a, r);
    }
    st
}

#[test]
fn device_updates_are_minimal() {
    let cur = DevState::from_list("c 1:3 rwm\nc 1:5 rwm\nc 136:* rwm\nb 8:0 r\n");
    let want = state(&[
        (true, "c 1:3 rwm"),
        (true, "c 1:5 rw"),
        (true, "c 10:200 rwm"),
    ]);
    let t = transition(&cur, &want);
    // No deny-all: only what differs.
    assert_eq!(
        t,
        vec![
            ("devices.allow", "c 10:200 rwm".to_string()),
            ("devices.deny", "b 8:0 r".to_string()),
            ("devices.deny", "c 1:5 m".to_string()),
            ("devices.deny", "c 136:* rwm".to_string()),
        ]
    );
    assert!(transition(&want, &want).is_empty());
    // From allow-all (the parent's default) a reset is needed.
    let t = transition(&DevState::from_list("a *:* rwm\n"), &want);
    assert_eq!(t[0], ("devices.deny", "a".to_string()));
    assert_eq!(t.len(), 4);
    // To allow-all with a deny exception.
    let open = state(&[(true, "a *:* rwm"), (false, "c 10:232 rwm")]);
    assert!(open.default_allow);
    let t = transition(&cur, &open);
    assert_eq!(
        t,
        vec![
            ("devices.allow", "a".to_string()),
            ("devices.deny", "c 10:232 rwm".to_string())
        ]
    );
    // A deny removes access from its exact key only (kernel rule).
    let st = state(&[(true, "c 1:3 rwm"), (false, "c *:* rwm")]);
    assert_eq!(st.exceptions.len(), 1);
}

#[test]
fn page_sizes_are_checked() {
    assert!(check_page_size("2MB").is_ok());
    assert!(check_page_size("1GB").is_ok());
    assert!(check_page_size("../x").is_err());
    assert!(check_page_size("2M").is_err());
}
