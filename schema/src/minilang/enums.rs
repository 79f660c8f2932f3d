//! The PostgreSQL enums the list filters compare with, as the mini-language compiler needs them:
//! stored labels and, for enums stored by value, the original's member names.

use super::EnumSpec;

pub static SESSION_STATUS: EnumSpec = EnumSpec {
    pg_type: "sessionstatus",
    labels: &[
        "PENDING",
        "SCHEDULED",
        "PULLING",
        "PREPARING",
        "RUNNING",
        "RESTARTING",
        "RUNNING_DEGRADED",
        "TERMINATING",
        "TERMINATED",
        "ERROR",
        "CANCELLED",
    ],
    names: &[],
    accept_lowercase: true,
};

pub static KERNEL_STATUS: EnumSpec = EnumSpec {
    pg_type: "kernelstatus",
    labels: &[
        "PENDING",
        "SCHEDULED",
        "PREPARING",
        "BUILDING",
        "PULLING",
        "RUNNING",
        "RESTARTING",
        "RESIZING",
        "SUSPENDED",
        "TERMINATING",
        "TERMINATED",
        "ERROR",
        "CANCELLED",
    ],
    names: &[],
    accept_lowercase: true,
};

pub static SESSION_RESULT: EnumSpec = EnumSpec {
    pg_type: "sessionresult",
    labels: &["UNDEFINED", "SUCCESS", "FAILURE"],
    names: &[],
    accept_lowercase: true,
};

pub static AGENT_STATUS: EnumSpec = EnumSpec {
    pg_type: "agentstatus",
    labels: &["ALIVE", "LOST", "RESTARTING", "TERMINATED"],
    names: &[],
    accept_lowercase: false,
};

pub static USER_STATUS: EnumSpec = EnumSpec {
    pg_type: "userstatus",
    labels: &["active", "inactive", "deleted", "before-verification"],
    names: &["ACTIVE", "INACTIVE", "DELETED", "BEFORE_VERIFICATION"],
    accept_lowercase: false,
};

pub static USER_ROLE: EnumSpec = EnumSpec {
    pg_type: "userrole",
    labels: &["superadmin", "admin", "user", "monitor"],
    names: &["SUPERADMIN", "ADMIN", "USER", "MONITOR"],
    accept_lowercase: false,
};

pub static VFOLDER_USAGE_MODE: EnumSpec = EnumSpec {
    pg_type: "vfolderusagemode",
    labels: &["general", "model", "data"],
    names: &["GENERAL", "MODEL", "DATA"],
    accept_lowercase: false,
};

pub static VFOLDER_PERMISSION: EnumSpec = EnumSpec {
    pg_type: "vfolderpermission",
    labels: &["ro", "rw", "wd"],
    names: &["READ_ONLY", "READ_WRITE", "RW_DELETE"],
    accept_lowercase: false,
};

pub static VFOLDER_OWNERSHIP_TYPE: EnumSpec = EnumSpec {
    pg_type: "vfolderownershiptype",
    labels: &["user", "group"],
    names: &["USER", "GROUP"],
    accept_lowercase: false,
};
