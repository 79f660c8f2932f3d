//! What a simulated kernel answers to the interactive calls (`execute`, files, logs, commit):
//! the reply shapes of the real agent's kernel runner, with a kernel that echoes code to stdout,
//! asks for input when the code calls `input(`, and keeps uploaded files in memory.

use std::collections::BTreeMap;

use bai_actors::wire::{Value, WireFormat};

/// Files uploaded to one simulated kernel, by path relative to `/home/work`.
pub type KernelFiles = BTreeMap<String, Vec<u8>>;

/// The arguments of `execute` after the generation-specific prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteArgs {
    pub kernel_id: String,
    pub run_id: String,
    pub mode: String,
    pub code: String,
    pub opts: Value,
}

/// Reads `execute`'s positional arguments (26.x puts the session id first).
pub fn execute_args(format: WireFormat, args: &[Value]) -> Option<ExecuteArgs> {
    let rest = match format {
        WireFormat::Payload => args.get(1..)?,
        WireFormat::Args => args,
    };
    let text = |index: usize| rest.get(index).and_then(Value::as_str).map(str::to_owned);
    Some(ExecuteArgs {
        kernel_id: text(0)?,
        run_id: text(2).unwrap_or_default(),
        mode: text(3)?,
        code: text(4).unwrap_or_default(),
        opts: rest.get(5).cloned().unwrap_or(Value::Nil),
    })
}

fn result(run_id: &str, status: &str, console: Vec<(&str, String)>, options: Value) -> Value {
    Value::map_of([
        ("runId", Value::str(run_id)),
        ("status", Value::str(status)),
        (
            "exitCode",
            if status == "finished" {
                Value::Int(0)
            } else {
                Value::Nil
            },
        ),
        (
            "console",
            Value::Array(
                console
                    .into_iter()
                    .map(|(stream, text)| Value::Array(vec![Value::str(stream), Value::str(text)]))
                    .collect(),
            ),
        ),
        ("options", options),
        ("files", Value::Array(Vec::new())),
    ])
}

/// One round of a run: query code is echoed to stdout (code calling `input(` first waits for
/// input), batch mode reports the build and exec commands it was given, input is echoed.
pub fn execute(call: &ExecuteArgs) -> Value {
    match call.mode.as_str() {
        "query" if call.code.contains("input(") => result(
            &call.run_id,
            "waiting-input",
            vec![("stdout", "input: ".to_owned())],
            Value::map_of([("is_password", Value::Bool(false))]),
        ),
        "query" => result(
            &call.run_id,
            "finished",
            vec![("stdout", format!("{}\n", call.code))],
            Value::Nil,
        ),
        "input" => result(
            &call.run_id,
            "finished",
            vec![("stdout", format!("got {}\n", call.code))],
            Value::Nil,
        ),
        "batch" => {
            let command = |key: &str| {
                call.opts
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("*")
                    .to_owned()
            };
            result(
                &call.run_id,
                "finished",
                vec![(
                    "stdout",
                    format!("build: {}\nexec: {}\n", command("build"), command("exec")),
                )],
                Value::Nil,
            )
        }
        _ => result(&call.run_id, "finished", Vec::new(), Value::Nil),
    }
}

/// `list_files`: the JSON text of the entries directly under `path`, as the kernel runner
/// reports them.
pub fn list_files(files: &KernelFiles, path: &str) -> Value {
    let relative = path.strip_prefix("/home/work").unwrap_or(path);
    let prefix = match relative.trim_matches('/') {
        "" | "." => String::new(),
        dir => format!("{dir}/"),
    };
    let entries: Vec<serde_json::Value> = files
        .iter()
        .filter_map(|(name, data)| {
            let rest = name.strip_prefix(&prefix)?;
            (!rest.contains('/')).then(|| {
                serde_json::json!({
                    "mode": "-rw-r--r--", "size": data.len(), "ctime": 0.0, "mtime": 0.0,
                    "atime": 0.0, "filename": rest,
                })
            })
        })
        .collect();
    Value::map_of([
        (
            "files",
            Value::str(serde_json::Value::from(entries).to_string()),
        ),
        ("errors", Value::str("")),
        ("abspath", Value::str(format!("/home/work/{prefix}"))),
    ])
}

/// A POSIX tar (ustar) archive of one file, as `download_file` returns.
pub fn tar_one(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let name_bytes = name.as_bytes();
    let name_len = name_bytes.len().min(100);
    header[..name_len].copy_from_slice(&name_bytes[..name_len]);
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{:0width$o}\0", value, width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], data.len() as u64);
    octal(&mut header[136..148], 0);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].fill(b' ');
    let checksum: u64 = header.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{checksum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
    let mut archive = header.to_vec();
    archive.extend_from_slice(data);
    archive.resize(archive.len().div_ceil(512) * 512, 0);
    archive.resize(archive.len() + 1024, 0);
    archive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_echoes_and_input_waits() {
        let mut call = ExecuteArgs {
            kernel_id: "k".into(),
            run_id: "r".into(),
            mode: "query".into(),
            code: "print(1)".into(),
            opts: Value::Nil,
        };
        let reply = execute(&call);
        assert_eq!(
            reply.get("status").and_then(Value::as_str),
            Some("finished")
        );
        call.code = "x = input()".into();
        let reply = execute(&call);
        assert_eq!(
            reply.get("status").and_then(Value::as_str),
            Some("waiting-input")
        );
    }

    #[test]
    fn listing_shows_direct_children_only() {
        let mut files = KernelFiles::new();
        files.insert("a.txt".into(), b"1".to_vec());
        files.insert("sub/b.txt".into(), b"22".to_vec());
        let listing = list_files(&files, ".");
        let text = listing.get("files").and_then(Value::as_str).unwrap();
        let entries: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(entries.as_array().unwrap().len(), 1);
        assert_eq!(tar_one("a.txt", b"1").len(), 512 * 4);
    }
}
