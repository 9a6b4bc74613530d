//! tokio peer of corio-bench: W1 spawn, W2 pingpong, W3 chain and yield, as
//! shared/bench/WORKLOADS.md defines them.
//!
//! Usage: peer-tokio <W1|W2|W3|yield> [N] [--workers K]
//!
//! W1-W3 run on the multi-thread runtime with K worker threads (default 2);
//! the workload's own main task is spawned onto the runtime, so it runs on a
//! worker as corio's main task does (block_on's future would run on the
//! calling thread instead). yield runs on a current_thread runtime. Each
//! workload checks its own result (exit 1 when wrong), times itself with
//! Instant (CLOCK_MONOTONIC) around the workload only, and prints one line:
//!   RESULT workload=<W> peer=tokio n=<N> wall_s=<s> rate=<ops/s> [key=value ...]

use std::process::exit;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, oneshot};

struct Args {
    workload: String,
    n: u64,
    workers: usize,
}

/// What a workload hands back: its wall time, or a message saying what was wrong.
type Outcome = Result<Duration, String>;

fn usage() -> ! {
    eprintln!("usage: peer-tokio <W1|W2|W3|yield> [N] [--workers K]");
    exit(2);
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut workload = None;
    let mut n = None;
    let mut workers = 2usize;
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        if a == "--workers" {
            i += 1;
            workers = argv.get(i).and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
            if workers == 0 {
                usage();
            }
        } else if workload.is_none() {
            workload = Some(a.clone());
        } else if n.is_none() {
            n = Some(a.parse::<u64>().ok().filter(|&v| v > 0).unwrap_or_else(|| usage()));
        } else {
            usage();
        }
        i += 1;
    }
    let workload = workload.unwrap_or_else(|| usage());
    let default_n = match workload.as_str() {
        "W1" | "W2" | "W3" => 1_000_000,
        "yield" => 10_000_000,
        _ => usage(),
    };
    Args { workload, n: n.unwrap_or(default_n), workers }
}

fn multi_thread(workers: usize) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .unwrap_or_else(|e| {
            eprintln!("peer-tokio: cannot build the runtime: {e}");
            exit(1)
        })
}

/// W1: spawn n tasks from one task, each returns its index; await all, check the sum.
async fn spawn_all(n: u64) -> Outcome {
    let mut handles = Vec::with_capacity(n as usize);
    let t0 = Instant::now();
    for i in 0..n {
        handles.push(tokio::spawn(async move { i }));
    }
    let mut sum = 0u64;
    for h in handles.drain(..) {
        sum = sum.wrapping_add(h.await.map_err(|e| format!("a task failed: {e}"))?);
    }
    let wall = t0.elapsed();
    let want = n * (n - 1) / 2;
    if sum != want {
        return Err(format!("sum {sum}, want {want}"));
    }
    Ok(wall)
}

/// W2: two tasks pass a counter back and forth through two capacity-1 channels.
async fn pingpong(n: u64) -> Outcome {
    let (to_pong, mut from_ping) = mpsc::channel::<u64>(1);
    let (to_ping, mut from_pong) = mpsc::channel::<u64>(1);
    let t0 = Instant::now();
    let pong = tokio::spawn(async move {
        let mut last = 0;
        for _ in 0..n {
            let v = from_ping.recv().await.expect("ping hung up");
            last = v + 1;
            to_ping.send(last).await.expect("ping hung up");
        }
        last
    });
    let mut counter = 0u64;
    for _ in 0..n {
        to_pong.send(counter).await.map_err(|_| "pong hung up".to_string())?;
        let reply = from_pong.recv().await.ok_or("pong hung up")?;
        if reply != counter + 1 {
            return Err(format!("reply {reply} to {counter}"));
        }
        counter = reply;
    }
    let last = pong.await.map_err(|e| format!("pong failed: {e}"))?;
    let wall = t0.elapsed();
    if counter != n || last != n {
        return Err(format!("counter {counter}, pong's last {last}, want {n}"));
    }
    Ok(wall)
}

/// One link of W3: task `i` spawns task `i + 1` and exits; task `n` reports.
fn chain_step(i: u64, n: u64, done: oneshot::Sender<u64>) {
    tokio::spawn(async move {
        if i == n {
            let _ = done.send(i);
        } else {
            chain_step(i + 1, n, done);
        }
    });
}

/// W3: a chain of n tasks, each spawning the next; the last signals completion.
async fn chain(n: u64) -> Outcome {
    let (tx, rx) = oneshot::channel();
    let t0 = Instant::now();
    chain_step(1, n, tx);
    let depth = rx.await.map_err(|_| "the chain broke".to_string())?;
    let wall = t0.elapsed();
    if depth != n {
        return Err(format!("depth {depth}, want {n}"));
    }
    Ok(wall)
}

/// yield: one task calls yield_now n times alone on a current_thread runtime.
async fn yield_loop(n: u64) -> Outcome {
    let t0 = Instant::now();
    let mut count = 0u64;
    for _ in 0..n {
        tokio::task::yield_now().await;
        count += 1;
    }
    let wall = t0.elapsed();
    if count != n {
        return Err(format!("count {count}, want {n}"));
    }
    Ok(wall)
}

/// Runs `fut` as a spawned task of `rt` (so it runs on a worker) and waits for it.
fn run_main<F>(rt: &Runtime, fut: F) -> Outcome
where
    F: std::future::Future<Output = Outcome> + Send + 'static,
{
    rt.block_on(async move { tokio::spawn(fut).await.map_err(|e| format!("main task: {e}"))? })
}

fn main() {
    let args = parse_args();
    let n = args.n;
    let outcome = match args.workload.as_str() {
        "W1" => run_main(&multi_thread(args.workers), spawn_all(n)),
        "W2" => run_main(&multi_thread(args.workers), pingpong(n)),
        "W3" => run_main(&multi_thread(args.workers), chain(n)),
        "yield" => {
            let rt = Builder::new_current_thread().build().unwrap_or_else(|e| {
                eprintln!("peer-tokio: cannot build the runtime: {e}");
                exit(1)
            });
            run_main(&rt, yield_loop(n))
        }
        _ => usage(),
    };
    let wall = match outcome {
        Ok(w) => w.as_secs_f64(),
        Err(msg) => {
            eprintln!("peer-tokio: {}: wrong result: {msg}", args.workload);
            exit(1);
        }
    };
    let rate = n as f64 / wall;
    let extra = if args.workload == "yield" {
        format!("ns_per_op={:.2}", wall * 1e9 / n as f64)
    } else {
        format!("workers={}", args.workers)
    };
    println!(
        "RESULT workload={} peer=tokio n={} wall_s={:.6} rate={:.0} {}",
        args.workload, n, wall, rate, extra
    );
}
