//! The floor of the production path: the `GetItem` and `PutItem` calls that
//! `GET`/`POST /candidate/{name}` make, issued in a closed loop by the service's own SDK
//! client configuration (`candidates::store::sdk_config`) with no HTTP server around
//! them. `scripts/bench.sh` runs it pinned to the service's core, against the same moto,
//! and compares its CPU per call with the service's CPU per request.
//!
//!     dynamodb_floor create-table TABLE
//!     dynamodb_floor seed TABLE PREFIX COUNT
//!     dynamodb_floor get TABLE PREFIX COUNT CONCURRENCY SECONDS
//!     dynamodb_floor put TABLE CONCURRENCY SECONDS
//!
//! Region, credentials and endpoint come from the environment, as for the service
//! (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`...). `get` reads the names
//! `PREFIX000`... that `seed` wrote; `put` writes names never written before. Both print
//! one JSON line: calls made, seconds, and this process's CPU time per call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use candidates::candidate::CandidateName;
use candidates::store::{
    StoreTimeouts, create_table_request, get_request, put_request, sdk_config,
};

fn main() {
    // `cargo bench` appends `--bench`; nothing else is expected.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        // The service's client, with the service's default request timeout (10 s).
        let config = sdk_config(StoreTimeouts::within(Duration::from_secs(10))).await;
        let client = Client::new(&config);
        match args.as_slice() {
            ["create-table", table] => create_table(&client, table).await,
            ["seed", table, prefix, count] => {
                for i in 0..number(count) {
                    put(&client, table, &format!("{prefix}{i:03}")).await;
                }
            }
            ["get", table, prefix, count, concurrency, seconds] => {
                let (table, prefix, count) = (table.to_string(), prefix.to_string(), number(count));
                let report = closed_loop(number(concurrency), number(seconds), move |i| {
                    let (client, table) = (client.clone(), table.clone());
                    let name = format!("{prefix}{:03}", i % count);
                    async move { get(&client, &table, &name).await }
                })
                .await;
                println!("{}", report.json("get"));
            }
            ["put", table, concurrency, seconds] => {
                let table = table.to_string();
                let run = std::process::id();
                let report = closed_loop(number(concurrency), number(seconds), move |i| {
                    let (client, table) = (client.clone(), table.clone());
                    let name = format!("floor-{run}-{i}");
                    async move { put(&client, &table, &name).await }
                })
                .await;
                println!("{}", report.json("put"));
            }
            // Plain `cargo bench`: this floor needs moto and a table, which bench.sh sets up.
            [] => eprintln!("dynamodb_floor: run by scripts/bench.sh (see its header)"),
            _ => {
                eprintln!("usage: see the header of service/benches/dynamodb_floor.rs");
                std::process::exit(2);
            }
        }
    });
}

fn number(raw: &str) -> u64 {
    raw.parse()
        .unwrap_or_else(|_| panic!("'{raw}' is not a whole number"))
}

/// What `DynamoDbStore::get` sends (the same builder).
async fn get(client: &Client, table: &str, name: &str) {
    get_request(client, table, &candidate(name))
        .send()
        .await
        .unwrap_or_else(|err| panic!("GetItem {name}: {err:?}"))
        .item()
        .unwrap_or_else(|| panic!("{name} was not seeded"));
}

/// What `DynamoDbStore::put` sends (the same builder).
async fn put(client: &Client, table: &str, name: &str) {
    put_request(client, table, &candidate(name))
        .send()
        .await
        .unwrap_or_else(|err| panic!("PutItem {name}: {err:?}"));
}

fn candidate(name: &str) -> CandidateName {
    CandidateName::parse(name).unwrap_or_else(|err| panic!("'{name}': {err}"))
}

/// The table as `infra/` declares it (the test suite's moto helper sends the same request).
async fn create_table(client: &Client, table: &str) {
    create_table_request(client, table)
        .send()
        .await
        .unwrap_or_else(|err| panic!("CreateTable {table}: {err:?}"));
}

struct Report {
    calls: u64,
    seconds: f64,
    cpu_seconds: f64,
}

impl Report {
    fn json(&self, op: &str) -> String {
        let calls = self.calls.max(1) as f64;
        format!(
            r#"{{"op":"{op}","calls":{},"seconds":{:.3},"cpu_seconds":{:.3},"calls_per_s":{:.1},"cpu_us_per_call":{:.2}}}"#,
            self.calls,
            self.seconds,
            self.cpu_seconds,
            self.calls as f64 / self.seconds,
            self.cpu_seconds * 1e6 / calls,
        )
    }
}

/// `concurrency` tasks, each issuing its next call when the last one answered, for
/// `seconds` after a one-second warm-up (connections opened, credentials cached).
async fn closed_loop<F, Fut>(concurrency: u64, seconds: u64, call: F) -> Report
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicU64::new(0));
    let counted = Arc::new(AtomicU64::new(0));
    let warm_up = Duration::from_secs(1);
    let started = Instant::now();
    let measure_from = started + warm_up;
    let end = measure_from + Duration::from_secs(seconds);
    let cpu_before = Arc::new(std::sync::OnceLock::new());
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (call, next, counted, cpu_before) = (
                Arc::clone(&call),
                Arc::clone(&next),
                Arc::clone(&counted),
                Arc::clone(&cpu_before),
            );
            tokio::spawn(async move {
                loop {
                    let now = Instant::now();
                    if now >= end {
                        return;
                    }
                    if now >= measure_from {
                        cpu_before.get_or_init(cpu_seconds);
                    }
                    call(next.fetch_add(1, Ordering::Relaxed)).await;
                    if now >= measure_from {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a call panicked");
    }
    let cpu_after = cpu_seconds();
    Report {
        calls: counted.load(Ordering::Relaxed),
        seconds: (Instant::now() - measure_from).as_secs_f64(),
        cpu_seconds: cpu_after - cpu_before.get().copied().unwrap_or(cpu_after),
    }
}

/// This process's CPU time (user + system, every thread), from `/proc/self/stat` in
/// clock ticks of 1/100 s, as the benchmark reads the service's.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name may hold spaces: fields are counted after its closing ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}
