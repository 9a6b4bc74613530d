//! tokio peer of corio-bench: W1 spawn, W2 pingpong, W3 chain, yield, W4
//! timers, W5 offload, W6 xthread, W7 memory, and the W8 http and W9 echo
//! servers, as shared/bench/WORKLOADS.md defines them; lock, lock_contended
//! and queue as corio's perf/bench (lock.c, queue.c) define them.
//!
//! W5 sends its blocking calls through spawn_blocking (tokio's blocking
//! pool, up to 512 threads) from 1000 tasks, one call each at a time; W6's
//! 4 std threads each Handle::spawn one task at a time and block on its
//! JoinHandle with Handle::block_on. lock and lock_contended use a
//! tokio::sync::Mutex (FIFO-fair, like corio's lock: a release with waiters
//! hands the lock to the first one); queue an mpsc::channel(128).
//!
//! Usage: peer-tokio <W1|W2|W3|W4|W5|W6|W7|yield|lock|lock_contended|queue> [N] [--workers K]
//!        peer-tokio <W8|W9> serve [--port P] [--workers K]
//!
//! W1-W4, W7, lock_contended, queue and the servers run on the multi-thread
//! runtime with K worker threads (default 2); the workload's own main task
//! is spawned onto the runtime, so it runs on a worker as corio's main task
//! does (block_on's future would run on the calling thread instead). yield
//! and lock run on a current_thread runtime (corio runs them on 1 worker).
//! Each workload checks its own result (exit 1 when wrong), times itself
//! with Instant (CLOCK_MONOTONIC) around the workload only, and prints one
//! line:
//!   RESULT workload=<W> peer=tokio n=<N> wall_s=<s> rate=<ops/s> [key=value ...]
//!
//! The servers listen on 127.0.0.1:P (P=0: the kernel picks a port), print
//! "LISTENING port=<P>" on stdout once listening, serve until SIGTERM or
//! SIGINT and then exit 0. perf/run drives them with its load generators and
//! measures them from outside (see perf/README.md).

use std::process::exit;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Builder, Runtime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, Mutex};

struct Args {
    workload: String,
    n: u64,
    workers: usize,
    port: u16,
}

/// What a workload hands back: its wall time, or a message saying what was wrong.
type Outcome = Result<Duration, String>;

fn usage() -> ! {
    eprintln!("usage: peer-tokio <W1|W2|W3|W4|W5|W6|W7|yield|lock|lock_contended|queue> [N] [--workers K]");
    eprintln!("       peer-tokio <W8|W9> serve [--port P] [--workers K]");
    exit(2);
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut workload = None;
    let mut n = None;
    let mut serve = false;
    let mut workers = 2usize;
    let mut port = 0u16;
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        if a == "--workers" {
            i += 1;
            workers = argv.get(i).and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
            if workers == 0 {
                usage();
            }
        } else if a == "--port" {
            i += 1;
            port = argv.get(i).and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
        } else if workload.is_none() {
            workload = Some(a.clone());
        } else if a == "serve" && !serve && n.is_none() {
            serve = true;
        } else if n.is_none() && !serve {
            n = Some(a.parse::<u64>().ok().filter(|&v| v > 0).unwrap_or_else(|| usage()));
        } else {
            usage();
        }
        i += 1;
    }
    let workload = workload.unwrap_or_else(|| usage());
    let is_server = workload == "W8" || workload == "W9";
    if is_server != serve {
        usage(); // the servers need "serve", the others must not have it
    }
    let default_n = match workload.as_str() {
        "W1" | "W2" | "W3" => 1_000_000,
        "W4" | "W5" | "W7" => 100_000,
        "W6" => 200_000,
        "yield" | "lock" => 10_000_000,
        "lock_contended" => 2_000_000,
        "queue" => 1_000_000,
        "W8" | "W9" => 0,
        _ => usage(),
    };
    Args { workload, n: n.unwrap_or(default_n), workers, port }
}

fn multi_thread(workers: usize) -> Runtime {
    build_multi_thread(workers, false)
}

/// The multi-thread runtime with the time and I/O drivers (W4, W7, W8, W9).
fn multi_thread_drivers(workers: usize) -> Runtime {
    build_multi_thread(workers, true)
}

/// The current_thread runtime, no drivers (yield, lock).
fn current_thread() -> Runtime {
    Builder::new_current_thread().build().unwrap_or_else(|e| {
        eprintln!("peer-tokio: cannot build the runtime: {e}");
        exit(1)
    })
}

fn build_multi_thread(workers: usize, drivers: bool) -> Runtime {
    let mut b = Builder::new_multi_thread();
    b.worker_threads(workers);
    if drivers {
        b.enable_all();
    }
    b.build().unwrap_or_else(|e| {
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

/// lock: one task locks and unlocks a Mutex n times, alone on a
/// current_thread runtime, counting under the lock.
async fn lock_loop(n: u64) -> Outcome {
    let lock = Mutex::new(0u64);
    let t0 = Instant::now();
    for _ in 0..n {
        *lock.lock().await += 1; // the guard drops (unlocks) at the end of the statement
    }
    let wall = t0.elapsed();
    let counter = lock.into_inner();
    if counter != n {
        return Err(format!("counter {counter}, want {n}"));
    }
    Ok(wall)
}

/// lock_contended: 4 tasks each do n/4 times lock; counter += 1; unlock on
/// one Mutex (the last takes the remainder); await all, check the counter.
async fn lock_contended(n: u64) -> Outcome {
    use std::sync::Arc;
    const CONTENDERS: u64 = 4;
    let lock = Arc::new(Mutex::new(0u64));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..CONTENDERS)
        .map(|i| {
            let ops = n / CONTENDERS + if i == CONTENDERS - 1 { n % CONTENDERS } else { 0 };
            let lock = lock.clone();
            tokio::spawn(async move {
                for _ in 0..ops {
                    *lock.lock().await += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.map_err(|e| format!("a task failed: {e}"))?;
    }
    let wall = t0.elapsed();
    let counter = *lock.lock().await;
    if counter != n {
        return Err(format!("counter {counter}, want {n}"));
    }
    Ok(wall)
}

/// queue: a producer task sends 1..=n through an mpsc::channel(128) to one
/// consumer task, which receives n items and returns their sum.
async fn queue(n: u64) -> Outcome {
    let (tx, mut rx) = mpsc::channel::<u64>(128);
    let t0 = Instant::now();
    let cons = tokio::spawn(async move {
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(rx.recv().await.ok_or("the producer hung up")?);
        }
        Ok::<u64, &'static str>(sum)
    });
    let prod = tokio::spawn(async move {
        for i in 1..=n {
            tx.send(i).await.map_err(|_| "the consumer hung up")?;
        }
        Ok::<(), &'static str>(())
    });
    prod.await.map_err(|e| format!("the producer failed: {e}"))??;
    let sum = cons.await.map_err(|e| format!("the consumer failed: {e}"))??;
    let wall = t0.elapsed();
    let want = if n % 2 == 1 { (n + 1) / 2 * n } else { n / 2 * (n + 1) };
    if sum != want {
        return Err(format!("sum {sum}, want {want}"));
    }
    Ok(wall)
}

/// W4's delays: WORKLOADS.md's LCG from s = 42, delay_ms = (s >> 33) % 100.
fn w4_delays(n: u64) -> Vec<Duration> {
    let mut s: u64 = 42;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            Duration::from_millis((s >> 33) % 100)
        })
        .collect()
}

/// W4: n tasks each sleep their delay; await all. Each task returns its
/// lateness (time after the sleep - time before - delay); an early wake-up is
/// a wrong result. Returns the wall time and the largest lateness.
async fn timers(n: u64) -> Result<(Duration, Duration), String> {
    let delays = w4_delays(n);
    let mut handles = Vec::with_capacity(n as usize);
    let t0 = Instant::now();
    for d in delays {
        handles.push(tokio::spawn(async move {
            let before = Instant::now();
            tokio::time::sleep(d).await;
            let slept = before.elapsed();
            slept.checked_sub(d).ok_or_else(|| format!("woke {:?} early", d - slept))
        }));
    }
    let mut max_late = Duration::ZERO;
    for h in handles.drain(..) {
        let late = h.await.map_err(|e| format!("a task failed: {e}"))??;
        max_late = max_late.max(late);
    }
    Ok((t0.elapsed(), max_late))
}

/// One "Key:   123 kB" line of /proc/self/status, in kB.
fn proc_status_kb(key: &str) -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {key} in /proc/self/status"))
}

/// W7: n tasks that each sleep 1 s concurrently; the figure is
/// (VmHWM after - VmRSS before) / n bytes.
async fn memory(n: u64) -> Result<(Duration, f64), String> {
    let rss_before = proc_status_kb("VmRSS")?;
    let mut handles = Vec::with_capacity(n as usize);
    let t0 = Instant::now();
    for _ in 0..n {
        handles.push(tokio::spawn(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            1u64
        }));
    }
    let mut done = 0u64;
    for h in handles.drain(..) {
        done += h.await.map_err(|e| format!("a task failed: {e}"))?;
    }
    let wall = t0.elapsed();
    let hwm = proc_status_kb("VmHWM")?;
    if done != n {
        return Err(format!("{done} of {n} tasks finished"));
    }
    if wall < Duration::from_secs(1) {
        return Err(format!("all done after {wall:?}, before the 1 s sleep"));
    }
    Ok((wall, hwm.saturating_sub(rss_before) as f64 * 1024.0 / n as f64))
}

const HELLO_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

/// W8, one connection: a hand-written HTTP/1.1 keep-alive loop. Every
/// request (header block up to "\r\n\r\n"; GET has no body) gets the fixed
/// response; all the complete requests of one read (pipelining) are answered
/// with one write.
async fn http_conn(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 4096];
    let mut len = 0; // bytes in buf
    let mut scanned = 0; // buf[..scanned] holds no "\r\n\r\n" (of the pending request)
    let mut out = Vec::with_capacity(4096);
    loop {
        if len == buf.len() {
            if len >= 1 << 20 {
                return; // a header block over 1 MiB: not a client of ours
            }
            buf.resize(len * 2, 0);
        }
        match s.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return,
            Ok(k) => len += k,
        }
        let mut start = 0;
        while let Some(pos) = buf[scanned..len].windows(4).position(|w| w == b"\r\n\r\n") {
            out.extend_from_slice(HELLO_RESPONSE);
            start = scanned + pos + 4;
            scanned = start;
        }
        scanned = len.saturating_sub(3).max(start);
        if start > 0 {
            buf.copy_within(start..len, 0);
            len -= start;
            scanned -= start;
        }
        if !out.is_empty() {
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// W9, one connection: read and write everything back.
async fn echo_conn(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 16384];
    loop {
        let k = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(k) => k,
        };
        if s.write_all(&buf[..k]).await.is_err() {
            return;
        }
    }
}

/// The W8/W9 server: listen, announce, accept until SIGTERM or SIGINT, exit 0.
async fn serve(port: u16, echo: bool) -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!("LISTENING port={port}"); // stdout is line-buffered: this flushes
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            accepted = listener.accept() => {
                let (s, _) = accepted.map_err(|e| format!("accept: {e}"))?;
                if echo {
                    tokio::spawn(echo_conn(s));
                } else {
                    tokio::spawn(http_conn(s));
                }
            }
        }
    }
}

/// W5's blocking call i: x = i+1, then 200 rounds of xorshift.
fn blocking_call(i: u64) -> u64 {
    let mut x = i + 1;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// W5: 1000 tasks each send one blocking call at a time to spawn_blocking,
/// taking call indices from a shared counter until n are claimed.
async fn offload(n: u64) -> Outcome {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let next = next.clone();
        handles.push(tokio::spawn(async move {
            let mut sum = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<u64, String>(sum);
                }
                let x = tokio::task::spawn_blocking(move || blocking_call(i))
                    .await
                    .map_err(|e| format!("a blocking call failed: {e}"))?;
                sum = sum.wrapping_add(x);
            }
        }));
    }
    let mut sum = 0u64;
    for h in handles {
        sum = sum.wrapping_add(h.await.map_err(|e| format!("a task failed: {e}"))??);
    }
    let wall = t0.elapsed();
    let want = (0..n).fold(0u64, |s, i| s.wrapping_add(blocking_call(i)));
    if sum != want {
        return Err(format!("sum {sum}, want {want}"));
    }
    Ok(wall)
}

/// W6: 4 plain threads each spawn n/4 tasks returning x+1 onto the running
/// runtime, blocking on each result in turn.
fn xthread(rt: &Runtime, n: u64) -> Outcome {
    let per = n / 4;
    if per == 0 {
        return Err("N must be at least 4".into());
    }
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let h = rt.handle().clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || -> Result<(), String> {
                barrier.wait();
                for x in 0..per {
                    let j = h.spawn(async move { x + 1 });
                    let v = h.block_on(j).map_err(|e| format!("a task failed: {e}"))?;
                    if v != x + 1 {
                        return Err(format!("got {v} for {x}"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "a thread panicked".to_string())??;
    }
    Ok(t0.elapsed())
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
    let mut extra = format!("workers={}", args.workers);
    let outcome = match args.workload.as_str() {
        "W1" => run_main(&multi_thread(args.workers), spawn_all(n)),
        "W2" => run_main(&multi_thread(args.workers), pingpong(n)),
        "W3" => run_main(&multi_thread(args.workers), chain(n)),
        "W5" => run_main(&multi_thread(args.workers), offload(n)),
        "W6" => xthread(&multi_thread(args.workers), n),
        "W4" => {
            let r = multi_thread_drivers(args.workers).block_on(async move {
                tokio::spawn(timers(n)).await.map_err(|e| format!("main task: {e}"))?
            });
            r.map(|(wall, late)| {
                extra = format!("max_late_ms={:.3} workers={}", late.as_secs_f64() * 1e3, args.workers);
                wall
            })
        }
        "W7" => {
            let r = multi_thread_drivers(args.workers).block_on(async move {
                tokio::spawn(memory(n)).await.map_err(|e| format!("main task: {e}"))?
            });
            r.map(|(wall, per_task)| {
                extra = format!("bytes_per_task={:.0} workers={}", per_task, args.workers);
                wall
            })
        }
        "W8" | "W9" => {
            let echo = args.workload == "W9";
            let port = args.port;
            let r = multi_thread_drivers(args.workers).block_on(async move {
                tokio::spawn(serve(port, echo)).await.map_err(|e| format!("server task: {e}"))?
            });
            if let Err(msg) = r {
                eprintln!("peer-tokio: {}: {msg}", args.workload);
                exit(1);
            }
            // Leave at once: connection tasks may still be running.
            exit(0);
        }
        "yield" => run_main(&current_thread(), yield_loop(n)),
        "lock" => run_main(&current_thread(), lock_loop(n)),
        "lock_contended" => run_main(&multi_thread(args.workers), lock_contended(n)),
        "queue" => run_main(&multi_thread(args.workers), queue(n)),
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
    if args.workload == "yield" || args.workload == "lock" {
        extra = format!("ns_per_op={:.2}", wall * 1e9 / n as f64);
    }
    println!(
        "RESULT workload={} peer=tokio n={} wall_s={:.6} rate={:.0} {}",
        args.workload, n, wall, rate, extra
    );
}
