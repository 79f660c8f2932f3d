//! The file log driver of a running manager: JSON lines, rotated at `rotation-size`, with
//! `backup-count` old files kept, all written by the supervisor for every worker.

use std::collections::BTreeSet;
use std::time::Duration;

use bai_testkit::TestEnv;

use crate::manager_process::{ManagerProcess, replace_logging_sections};

#[tokio::test]
async fn the_file_driver_rotates_at_rotation_size_and_keeps_backup_count_files() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let logs = env.path("logs");
    replace_logging_sections(
        &config,
        &format!(
            r#"[logging]
level = "INFO"
drivers = ["file"]

[logging.pkg-ns]
"" = "WARNING"
"ai.backend" = "INFO"
"aiohttp" = "INFO"

[logging.file]
path = "{}"
filename = "manager.log"
backup-count = 2
rotation-size = "2K""#,
            logs.display()
        ),
    );
    let mut manager = ManagerProcess::start_server(
        &config,
        &[("BACKEND_MANAGER_NPROC", "2")],
        &env.path("out.log"),
    );
    manager.wait_for_port(env.service_port);

    // Each request adds an access-log line of about 250 bytes: 60 of them rotate several times.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for n in 0..60 {
        let response = client
            .get(format!("http://127.0.0.1:{}/", env.service_port))
            .header("user-agent", format!("request-{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // The workers relay their lines to the supervisor; wait for the last one to be written
    // (two workers log concurrently, so it may already sit in a rotated file).
    let all_logs = || {
        ["manager.log", "manager.log.1", "manager.log.2"]
            .iter()
            .map(|name| std::fs::read_to_string(logs.join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !all_logs().contains("request-59") {
        assert!(
            std::time::Instant::now() < deadline,
            "the last access was not logged:\n{}\n{}",
            manager.output(),
            all_logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["manager.log", "manager.log.1", "manager.log.2"]);

    let mut workers = BTreeSet::new();
    let mut requests = BTreeSet::new();
    for name in &names {
        let text = std::fs::read_to_string(logs.join(name)).unwrap();
        assert!(text.len() < 2048, "{name} is {} bytes", text.len());
        for line in text.lines() {
            let record: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {line}"));
            for key in ["timestamp", "level", "name", "processName", "message"] {
                assert!(record.get(key).is_some(), "{name}: no {key} in {line}");
            }
            if let Some(n) = record["message"]
                .as_str()
                .and_then(|m| m.split("request-").nth(1))
                .and_then(|rest| rest.split('"').next())
                .and_then(|n| n.parse::<u32>().ok())
            {
                requests.insert(n);
                workers.insert(record["processName"].as_str().unwrap().to_owned());
            }
        }
    }
    // The newest lines survive in order of age; the oldest were rotated away.
    assert!(requests.contains(&59));
    assert!(!requests.contains(&0), "nothing was dropped by rotation");
    assert_eq!(
        workers,
        BTreeSet::from(["worker-1".to_owned(), "worker-2".to_owned()]),
        "both workers' lines go to the one file"
    );
}
