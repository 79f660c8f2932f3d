//! `bai-agent-sim`: N simulated agents heartbeating into a Redis `events` stream.
//!
//! Example: `bai-agent-sim --redis 127.0.0.1:6379 --agents 10000 --interval 1 --rounds 60`

use std::time::{Duration, Instant};

use bai_actors::wire::WireFormat;
use bai_agent_sim::{StreamWriter, fleet, run_heartbeats};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Simulated Backend.AI agents heartbeating into Redis")]
struct Args {
    /// Redis `host:port` (db 4 holds the stream).
    #[arg(long, default_value = "127.0.0.1:6379")]
    redis: String,
    /// How many agents.
    #[arg(long, default_value_t = 10)]
    agents: usize,
    /// Seconds between two heartbeats of one agent.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// How many heartbeat rounds (0 = until killed).
    #[arg(long, default_value_t = 0)]
    rounds: u64,
    /// Wire format: `args` (23.09 msgpack) or `payload` (26.x JSON).
    #[arg(long, default_value = "args")]
    format: String,
    /// Agent ids are `<prefix><n>`.
    #[arg(long, default_value = "i-sim-")]
    id_prefix: String,
    /// The first agent's advertised RPC port (the others count up).
    #[arg(long, default_value_t = 16100)]
    first_rpc_port: u16,
    /// How many pipelined groups one interval is split into.
    #[arg(long, default_value_t = 20)]
    slices: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let format = WireFormat::parse(&args.format).ok_or_else(|| {
        anyhow::anyhow!("--format must be args or payload, not {:?}", args.format)
    })?;
    let agents = fleet(&args.id_prefix, args.agents, format, args.first_rpc_port);
    let mut writer = StreamWriter::connect(&args.redis).await?;
    let rounds = if args.rounds == 0 {
        u64::MAX
    } else {
        args.rounds
    };
    let started = Instant::now();
    let sent = run_heartbeats(
        &mut writer,
        &agents,
        Duration::from_secs_f64(args.interval),
        args.slices,
        rounds,
    )
    .await?;
    println!(
        "sent {sent} heartbeats from {} agents in {:.1} s",
        agents.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
