//! Namespaces from config.json: which to create with clone/unshare and which
//! to join with setns.

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::ffi::CString;

pub fn clone_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// The name under /proc/<pid>/ns/ for a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

/// A namespace to join: the path and its CLONE_NEW* type.
pub struct Join {
    pub path: CString,
    pub flag: libc::c_int,
}

pub struct NamespacePlan {
    /// Namespaces to create.
    pub create: libc::c_int,
    /// Namespaces to join, user first (joining it grants the rights for the rest).
    pub join: Vec<Join>,
}

impl NamespacePlan {
    pub fn from_spec(list: &[LinuxNamespace]) -> crate::Result<NamespacePlan> {
        let mut create = 0;
        let mut join = Vec::new();
        for ns in list {
            let flag = clone_flag(ns.typ());
            match ns.path() {
                Some(p) => join.push(Join {
                    path: CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| {
                        crate::Error::invalid(format!("namespace path {} has a NUL", p.display()))
                    })?,
                    flag,
                }),
                None => create |= flag,
            }
        }
        join.sort_by_key(|j| j.flag != libc::CLONE_NEWUSER);
        Ok(NamespacePlan { create, join })
    }

    pub fn creates(&self, flag: libc::c_int) -> bool {
        self.create & flag != 0
    }

    /// Joined namespaces and time namespaces take effect for children only
    /// (pid, time) or must be entered before others are made: those need an
    /// intermediate process; the plain case is one clone.
    pub fn needs_two_stages(&self) -> bool {
        !self.join.is_empty() || self.creates(libc::CLONE_NEWTIME)
    }
}
