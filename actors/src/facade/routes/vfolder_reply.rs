//! The JSON bodies of the vfolder routes, shaped exactly as the original builds them
//! (Python's `str()` of datetimes and `None`, `oct()` file modes, `stat.filemode`, the legacy
//! `files` string made by `json.dumps`). Pure functions, tested without I/O.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::compat::pyjson::{float_repr, json_string};
use crate::storage::client::{FileEntry, FolderUsage};
use bai_schema::queries::vfolder::AccessibleVFolder;

/// Python's `str(datetime)` of an aware UTC datetime: `2026-11-28 02:16:18.685504+00:00`,
/// without the fraction when the microseconds are zero.
pub fn python_datetime(at: DateTime<Utc>) -> String {
    let micros = at.timestamp_subsec_micros();
    if micros == 0 {
        at.format("%Y-%m-%d %H:%M:%S+00:00").to_string()
    } else {
        format!("{}.{micros:06}+00:00", at.format("%Y-%m-%d %H:%M:%S"))
    }
}

/// Python's `str(x)` of an optional value: `"None"` for nothing.
fn python_str_or_none(value: Option<String>) -> String {
    value.unwrap_or_else(|| "None".to_owned())
}

fn opt_uuid(value: Option<uuid::Uuid>) -> Value {
    value.map_or(Value::Null, |u| Value::String(u.to_string()))
}

/// One item of `GET /folders`.
pub fn list_item(folder: &AccessibleVFolder) -> Value {
    json!({
        "name": folder.name,
        "id": folder.id.simple().to_string(),
        "quota_scope_id": python_str_or_none(folder.quota_scope_id.clone()),
        "host": folder.host,
        "status": folder.status,
        "usage_mode": folder.usage_mode.as_str(),
        "created_at": python_datetime(folder.created_at),
        "is_owner": folder.is_owner,
        "permission": folder.permission.map(|p| p.as_str()),
        "user": opt_uuid(folder.user),
        "group": opt_uuid(folder.group),
        "creator": folder.creator,
        "user_email": folder.user_email,
        "group_name": folder.group_name,
        "ownership_type": folder.ownership_type.as_str(),
        "type": folder.ownership_type.as_str(),
        "cloneable": folder.cloneable,
        "max_files": folder.max_files,
        "max_size": folder.max_size,
        "cur_size": folder.cur_size,
    })
}

/// `GET /folders/{name}`: the folder and its usage on the proxy. A folder without a
/// permission counts as the owner's (`wd`), as in the original.
pub fn info(folder: &AccessibleVFolder, usage: FolderUsage) -> Value {
    let (is_owner, permission) = match folder.permission {
        None => (true, "wd"),
        Some(p) => (folder.is_owner, p.as_str()),
    };
    let created = python_datetime(folder.created_at);
    json!({
        "name": folder.name,
        "id": folder.id.simple().to_string(),
        "host": folder.host,
        "quota_scope_id": python_str_or_none(folder.quota_scope_id.clone()),
        "status": folder.status,
        "numFiles": usage.file_count,
        "num_files": usage.file_count,
        "used_bytes": usage.used_bytes,
        "created": created,
        "created_at": created,
        // The original reports the creation time here too.
        "last_used": created,
        "user": python_str_or_none(folder.user.map(|u| u.to_string())),
        "group": python_str_or_none(folder.group.map(|g| g.to_string())),
        "type": if folder.user.is_some() { "user" } else { "group" },
        "is_owner": is_owner,
        "permission": permission,
        "usage_mode": folder.usage_mode.as_str(),
        "cloneable": folder.cloneable,
        "max_size": folder.max_size,
        "cur_size": folder.cur_size,
    })
}

/// `oct(mode)[2:][-3:]`: the last three octal digits.
pub fn octal_permissions(mode: u32) -> String {
    let text = format!("{mode:o}");
    text[text.len().saturating_sub(3)..].to_owned()
}

/// Python's `stat.filemode`: `drwxr-xr-x`, with `s`/`S` and `t`/`T` for the special bits.
pub fn filemode(mode: u32) -> String {
    const S_IFMT: u32 = 0o170000;
    let kind = match mode & S_IFMT {
        0o140000 => 's',
        0o120000 => 'l',
        0o100000 => '-',
        0o060000 => 'b',
        0o040000 => 'd',
        0o020000 => 'c',
        0o010000 => 'p',
        _ => '?',
    };
    let mut text = String::with_capacity(10);
    text.push(kind);
    let triplets = [
        (0o400, 0o200, 0o100, 0o4000, 's', 'S'),
        (0o040, 0o020, 0o010, 0o2000, 's', 'S'),
        (0o004, 0o002, 0o001, 0o1000, 't', 'T'),
    ];
    for (read, write, exec, special, with_exec, without_exec) in triplets {
        text.push(if mode & read != 0 { 'r' } else { '-' });
        text.push(if mode & write != 0 { 'w' } else { '-' });
        text.push(match (mode & exec != 0, mode & special != 0) {
            (true, true) => with_exec,
            (false, true) => without_exec,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    text
}

/// `datetime.fromisoformat(text).timestamp()`; 0 when the proxy sent something unreadable.
fn timestamp(text: &str) -> f64 {
    DateTime::parse_from_rfc3339(text)
        // As Python: whole microseconds divided once, so the rounding is the same.
        .map(|at| at.timestamp_micros() as f64 / 1e6)
        .unwrap_or(0.0)
}

/// `GET /folders/{name}/files`: the items, and the legacy `files` JSON string that
/// `json.dumps` made (`", "` and `": "` separators, Python float reprs).
pub fn file_listing(entries: &[FileEntry]) -> Value {
    let items: Vec<Value> = entries
        .iter()
        .map(|entry| {
            json!({
                "name": entry.name,
                "type": entry.file_type,
                "size": entry.stat.size,
                "mode": octal_permissions(entry.stat.mode),
                "created": entry.stat.created,
                "modified": entry.stat.modified,
            })
        })
        .collect();
    let legacy: Vec<String> = entries
        .iter()
        .map(|entry| {
            format!(
                "{{\"filename\": {}, \"size\": {}, \"mode\": {}, \"ctime\": {}, \"atime\": 0, \"mtime\": {}}}",
                json_string(&entry.name),
                entry.stat.size,
                json_string(&filemode(entry.stat.mode)),
                float_repr(timestamp(&entry.stat.created)),
                float_repr(timestamp(&entry.stat.modified)),
            )
        })
        .collect();
    let mut body = Map::new();
    body.insert("items".into(), Value::Array(items));
    body.insert(
        "files".into(),
        Value::String(format!("[{}]", legacy.join(", "))),
    );
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use bai_schema::enums::{VFolderOwnershipType, VFolderPermission, VFolderUsageMode};
    use chrono::TimeZone;

    use super::*;
    use crate::storage::client::FileStat;

    fn captured_folder() -> AccessibleVFolder {
        AccessibleVFolder {
            id: "726ec4ea2fa8490c8f40b37c1bf47e4b".parse().unwrap(),
            name: "myvf1".into(),
            host: "local:volume1".into(),
            domain_name: "default".into(),
            quota_scope_id: Some("user:f38dea23-50fa-42a0-b5ae-338f5f4693f4".into()),
            usage_mode: VFolderUsageMode::General,
            max_files: 1000,
            max_size: None,
            num_files: 0,
            cur_size: 0,
            created_at: Utc
                .with_ymd_and_hms(2026, 11, 28, 2, 16, 18)
                .unwrap()
                .with_nanosecond(685_504_000)
                .unwrap(),
            last_used: None,
            creator: Some("admin@lablup.com".into()),
            unmanaged_path: Some(String::new()),
            ownership_type: VFolderOwnershipType::User,
            user: Some("f38dea23-50fa-42a0-b5ae-338f5f4693f4".parse().unwrap()),
            group: None,
            cloneable: false,
            status: "ready".into(),
            permission: Some(VFolderPermission::ReadWrite),
            is_owner: true,
            user_email: Some("admin@lablup.com".into()),
            group_name: None,
        }
    }

    use chrono::Timelike;

    #[test]
    fn info_matches_the_captured_reply() {
        // real-manager.http #76
        let body = info(
            &captured_folder(),
            FolderUsage {
                file_count: 0,
                used_bytes: 0,
            },
        );
        let expected: Value = serde_json::from_str(
            r#"{"name": "myvf1", "id": "726ec4ea2fa8490c8f40b37c1bf47e4b", "host": "local:volume1",
              "quota_scope_id": "user:f38dea23-50fa-42a0-b5ae-338f5f4693f4", "status": "ready",
              "numFiles": 0, "num_files": 0, "used_bytes": 0,
              "created": "2026-11-28 02:16:18.685504+00:00",
              "created_at": "2026-11-28 02:16:18.685504+00:00",
              "last_used": "2026-11-28 02:16:18.685504+00:00",
              "user": "f38dea23-50fa-42a0-b5ae-338f5f4693f4", "group": "None", "type": "user",
              "is_owner": true, "permission": "rw", "usage_mode": "general", "cloneable": false,
              "max_size": null, "cur_size": 0}"#,
        )
        .unwrap();
        assert_eq!(body, expected);
        // The same key order as the original, too.
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        let expected_keys: Vec<&String> = expected.as_object().unwrap().keys().collect();
        assert_eq!(keys, expected_keys);
    }

    #[test]
    fn the_file_listing_matches_the_captured_reply() {
        // real-manager.http #80 from manager-to-storage.http #5
        let entries = vec![FileEntry {
            name: "sub".into(),
            file_type: "DIRECTORY".into(),
            stat: FileStat {
                mode: 16877,
                size: 4096,
                created: "2026-11-28T02:16:20.250860+00:00".into(),
                modified: "2026-11-28T02:16:20.250860+00:00".into(),
            },
            symlink_target: Some(String::new()),
        }];
        let body = file_listing(&entries);
        assert_eq!(
            body,
            json!({
                "items": [{"name": "sub", "type": "DIRECTORY", "size": 4096, "mode": "755",
                           "created": "2026-11-28T02:16:20.250860+00:00",
                           "modified": "2026-11-28T02:16:20.250860+00:00"}],
                "files": "[{\"filename\": \"sub\", \"size\": 4096, \"mode\": \"drwxr-xr-x\", \"ctime\": 1795832180.25086, \"atime\": 0, \"mtime\": 1795832180.25086}]"
            })
        );
    }

    #[test]
    fn modes_and_times_render_as_python_does() {
        assert_eq!(filemode(0o100644), "-rw-r--r--");
        assert_eq!(filemode(0o104755), "-rwsr-xr-x");
        assert_eq!(filemode(0o041777), "drwxrwxrwt");
        assert_eq!(filemode(0o120777), "lrwxrwxrwx");
        assert_eq!(filemode(0o102644), "-rw-r-Sr--");
        assert_eq!(octal_permissions(0o100644), "644");
        assert_eq!(float_repr(1795832180.0), "1795832180.0");
        assert_eq!(
            python_datetime(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()),
            "2026-01-02 03:04:05+00:00"
        );
        assert_eq!(json_string("a\"é"), "\"a\\\"\\u00e9\"");
    }

    #[test]
    fn list_items_carry_every_field_of_the_original() {
        let item = list_item(&captured_folder());
        for key in [
            "name",
            "id",
            "quota_scope_id",
            "host",
            "status",
            "usage_mode",
            "created_at",
            "is_owner",
            "permission",
            "user",
            "group",
            "creator",
            "user_email",
            "group_name",
            "ownership_type",
            "type",
            "cloneable",
            "max_files",
            "max_size",
            "cur_size",
        ] {
            assert!(item.get(key).is_some(), "{key}");
        }
        assert_eq!(item["created_at"], "2026-11-28 02:16:18.685504+00:00");
        assert_eq!(item["group"], Value::Null);
    }
}
