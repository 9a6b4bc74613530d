#!/usr/bin/env python3
"""perf/peers/python/peer.py - the Python asyncio and uvloop peers of corio-bench.

Usage: peer.py --loop asyncio|uvloop <W1|W2|W3|W4|W5|W6|W7|yield|lock|lock_contended|queue>
               [N] [--workers K]
       peer.py --loop asyncio|uvloop <W8|W9> serve [--port P] [--workers 1]

One script for both peers: --loop asyncio runs the standard event loop,
--loop uvloop the same code on uvloop's loop (libuv underneath). perf/run
runs both on the same interpreter, the one that can import uvloop. The loop
is single-threaded: --workers is accepted and ignored (WORKLOADS.md:
single-threaded runtimes run as they are); the servers refuse anything but 1.
W5 and W6 use threads besides the loop's (the default executor, 4 submitters)
but size nothing after --workers either.

  W1  create_task(N coroutines returning their index), gather, check the sum
  W2  two tasks, two asyncio.Queue(maxsize=1), N round trips of a counter
  W3  each task creates the next and exits; the N-th sets a future
  W4  N tasks each asyncio.sleep(delay) (WORKLOADS.md's delays), gather; a
      task whose sleep ended early (uvloop's timers run on libuv's millisecond
      clock) sleeps the rest, so none wakes early; max lateness reported
  W5  1000 tasks each await loop.run_in_executor(None, ...) one blocking call
      at a time (WORKLOADS.md's xorshift call), taking call indices from a
      shared counter until N are claimed; the sum (mod 2^64) is checked
      against the one computed directly after the timed region
  W6  4 threading.Threads each submit N/4 coroutines returning x+1 with
      asyncio.run_coroutine_threadsafe and block on each .result(); timed
      from the threads' common start (a Barrier) to the last one's end
  W7  N tasks each asyncio.sleep(1) at once; (VmHWM after - VmRSS before) / N
  yield           one task awaits asyncio.sleep(0) N times (ns_per_op)
  lock            one task: await lock.acquire(); counter += 1; lock.release()
                  N times on an asyncio.Lock (ns_per_op)
  lock_contended  4 tasks each do N/4 times (the last the remainder) the
                  same on one asyncio.Lock, nothing awaited while holding it,
                  as perf/bench/lock.c: on one thread the free lock's acquire
                  never suspends, so each task runs its share to the end in
                  one step and no hand-over happens (corio's contention comes
                  from parallel workers)
  queue           a producer task puts 1..N into an asyncio.Queue(maxsize=128),
                  a consumer task gets them and checks the sum
  W8  HTTP/1.1 keep-alive hello world, W9 echo: asyncio Protocols
      (loop.create_server with a Protocol class: the fast path uvloop
      advertises; streams add a reader/writer object pair per connection)

Each workload checks its own result (exit 1 when wrong) and times itself with
time.perf_counter around the workload only (the loop is created before). It
prints one line:
  RESULT workload=<W> peer=<asyncio|uvloop> n=<N> wall_s=<s> rate=<ops/s> [key=value ...]
The servers print "LISTENING port=<P>" once listening and exit 0 on SIGTERM.
"""
import asyncio
import signal
import socket
import sys
import threading
import time

USAGE = ("usage: peer.py --loop asyncio|uvloop "
         "<W1|W2|W3|W4|W5|W6|W7|yield|lock|lock_contended|queue> [N] [--workers K]\n"
         "       peer.py --loop asyncio|uvloop <W8|W9> serve [--port P] [--workers 1]")
DEFAULT_N = {"W1": 1000000, "W2": 1000000, "W3": 1000000, "W4": 100000, "W5": 100000,
             "W6": 200000, "W7": 100000, "yield": 10000000, "lock": 10000000,
             "lock_contended": 2000000, "queue": 1000000}


def usage():
    print(USAGE, file=sys.stderr)
    sys.exit(2)


def wrong(w, why):
    print(f"peer.py: {w}: wrong result: {why}", file=sys.stderr)
    sys.exit(1)


def parse_args(argv):
    loop = workload = None
    n = None
    serve = False
    port = 0
    workers = 1
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--loop", "--port", "--workers"):
            i += 1
            if i >= len(argv):
                usage()
            v = argv[i]
            if a == "--loop":
                if v not in ("asyncio", "uvloop"):
                    usage()
                loop = v
            else:
                if not v.isdigit():
                    usage()
                if a == "--port":
                    port = int(v)
                else:
                    workers = int(v)
        elif workload is None:
            workload = a
        elif a == "serve" and workload in ("W8", "W9") and not serve:
            serve = True
        elif n is None and workload in DEFAULT_N and a.isdigit() and int(a) > 0:
            n = int(a)
        else:
            usage()
        i += 1
    if loop is None or workload is None:
        usage()
    if workload in ("W8", "W9"):
        if not serve or workers != 1 or port > 65535:
            usage()
    elif workload not in DEFAULT_N:
        usage()
    return loop, workload, n or DEFAULT_N.get(workload, 0), port


# --- W1 W2 W3 ----------------------------------------------------------------

async def child(i):
    return i


async def w1_spawn(n):
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(child(i)) for i in range(n)]
    total = sum(await asyncio.gather(*tasks))
    wall = time.perf_counter() - t0
    if total != n * (n - 1) // 2:
        wrong("W1", f"sum {total}, want {n * (n - 1) // 2}")
    return wall, ""


async def pong(n, inq, outq):
    last = 0
    for _ in range(n):
        last = await inq.get() + 1
        await outq.put(last)
    return last


async def w2_pingpong(n):
    to_pong = asyncio.Queue(maxsize=1)
    to_ping = asyncio.Queue(maxsize=1)
    t0 = time.perf_counter()
    other = asyncio.create_task(pong(n, to_pong, to_ping))
    counter = 0
    for _ in range(n):
        await to_pong.put(counter)
        reply = await to_ping.get()
        if reply != counter + 1:
            wrong("W2", f"reply {reply} to {counter}")
        counter = reply
    last = await other
    wall = time.perf_counter() - t0
    if counter != n or last != n:
        wrong("W2", f"counter {counter}, pong's last {last}, want {n}")
    return wall, ""


async def chain_step(i, n, done):
    if i == n:
        done.set_result(i)
        return
    asyncio.get_running_loop().create_task(chain_step(i + 1, n, done))


async def w3_chain(n):
    done = asyncio.get_running_loop().create_future()
    t0 = time.perf_counter()
    asyncio.create_task(chain_step(1, n, done))
    depth = await done
    wall = time.perf_counter() - t0
    if depth != n:
        wrong("W3", f"depth {depth}, want {n}")
    return wall, ""


# --- W4 W7 -------------------------------------------------------------------

def w4_delays(n):
    s = 42
    out = []
    for _ in range(n):
        s = (s * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out.append(((s >> 33) % 100) / 1000.0)
    return out


async def sleeper(delay):
    before = time.perf_counter()
    await asyncio.sleep(delay)
    elapsed = time.perf_counter() - before
    while elapsed < delay:            # the loop's clock ran behind: sleep the rest
        await asyncio.sleep(delay - elapsed)
        elapsed = time.perf_counter() - before
    return elapsed - delay


async def w4_timers(n):
    delays = w4_delays(n)
    t0 = time.perf_counter()
    lates = await asyncio.gather(*[asyncio.create_task(sleeper(d)) for d in delays])
    wall = time.perf_counter() - t0
    if len(lates) != n or min(lates) < 0:
        wrong("W4", "a task woke early or is missing")
    return wall, f"max_late_ms={max(lates) * 1e3:.3f}"


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    wrong("W7", f"no {key} in /proc/self/status")


async def sleep_one():
    await asyncio.sleep(1)
    return 1


async def w7_memory(n):
    rss_before = status_kb("VmRSS")
    t0 = time.perf_counter()
    done = sum(await asyncio.gather(*[asyncio.create_task(sleep_one()) for _ in range(n)]))
    wall = time.perf_counter() - t0
    hwm = status_kb("VmHWM")
    if done != n:
        wrong("W7", f"{done} of {n} tasks finished")
    if wall < 1.0:
        wrong("W7", "all done before the 1 s sleep")
    return wall, f"bytes_per_task={(hwm - rss_before) * 1024 / n:.0f}"


# --- W5 W6 -------------------------------------------------------------------

M64 = 0xFFFFFFFFFFFFFFFF
W5_IN_FLIGHT = 1000   # WORKLOADS.md W5
W6_THREADS = 4        # WORKLOADS.md W6


def blocking_call(i):
    """W5's blocking call i: x = i+1, then 200 rounds of xorshift mod 2^64."""
    x = i + 1
    for _ in range(200):
        x ^= (x << 13) & M64
        x ^= x >> 7
        x ^= (x << 17) & M64
    return x


async def w5_offload(n):
    # The loop's default executor as it comes: both asyncio and uvloop create
    # a plain concurrent.futures.ThreadPoolExecutor() on the first call, so
    # max_workers = min(32, os.cpu_count() + 4) (6 threads on 2 CPUs), its
    # threads started on demand inside the timed region. The calls are pure
    # Python: they hold the GIL, so the threads compute them one at a time.
    loop = asyncio.get_running_loop()
    next_i = 0

    async def offloader():
        nonlocal next_i
        total = 0
        while True:
            i = next_i                # one thread: the claim needs no atomics
            if i >= n:
                return total
            next_i = i + 1
            total += await loop.run_in_executor(None, blocking_call, i)

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(offloader()) for _ in range(W5_IN_FLIGHT)]
    total = 0
    for t in tasks:
        total += await t
    wall = time.perf_counter() - t0
    total &= M64
    want = sum(blocking_call(i) for i in range(n)) & M64
    if total != want:
        wrong("W5", f"sum {total}, want {want}")
    return wall, ""


async def inc(x):
    return x + 1


def submitter(loop, per_thread, go, starts, ends, errors):
    go.wait()
    starts.append(time.perf_counter())
    try:
        for x in range(per_thread):
            v = asyncio.run_coroutine_threadsafe(inc(x), loop).result()
            if v != x + 1:
                errors.append(f"got {v} for {x}")
                return
    except Exception as e:            # noqa: BLE001 - reported by the main task
        errors.append(f"submit of {x}: {e!r}")
        return
    finally:
        ends.append(time.perf_counter())


async def w6_xthread(n):
    per_thread = n // W6_THREADS      # as perf/bench/xthread.c (n=N is printed)
    if per_thread == 0:
        wrong("W6", f"N must be at least {W6_THREADS}")
    loop = asyncio.get_running_loop()
    go = threading.Barrier(W6_THREADS)
    starts, ends, errors = [], [], []
    threads = [threading.Thread(target=submitter,
                                args=(loop, per_thread, go, starts, ends, errors))
               for _ in range(W6_THREADS)]
    for t in threads:
        t.start()
    for t in threads:                 # joined on the default executor: the loop runs on
        await loop.run_in_executor(None, t.join)
    if errors:
        wrong("W6", errors[0])
    return max(ends) - min(starts), ""


# --- yield lock lock_contended queue -----------------------------------------

async def yield_loop(n):
    # sleep(0) is a bare yield: the task goes back to the loop's ready queue
    # (no timer, so uvloop's millisecond clock does not enter).
    t0 = time.perf_counter()
    for _ in range(n):
        await asyncio.sleep(0)
    wall = time.perf_counter() - t0
    return wall, f"ns_per_op={wall * 1e9 / n:.2f}"


async def lock_loop(n):
    lock = asyncio.Lock()
    counter = 0
    t0 = time.perf_counter()
    for _ in range(n):
        await lock.acquire()
        counter += 1
        lock.release()
    wall = time.perf_counter() - t0
    if counter != n:
        wrong("lock", f"counter {counter}, want {n}")
    return wall, f"ns_per_op={wall * 1e9 / n:.2f}"


async def w_lock_contended(n):
    lock = asyncio.Lock()
    counter = 0

    async def contend(ops):
        nonlocal counter
        for _ in range(ops):
            await lock.acquire()
            counter += 1
            lock.release()

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(contend(n // 4 + (n % 4 if k == 3 else 0)))
             for k in range(4)]
    for t in tasks:
        await t
    wall = time.perf_counter() - t0
    if counter != n:
        wrong("lock_contended", f"counter {counter}, want {n}")
    return wall, ""


async def q_producer(n, q):
    for i in range(1, n + 1):
        await q.put(i)


async def q_consumer(n, q):
    total = 0
    for _ in range(n):
        total += await q.get()
    return total


async def w_queue(n):
    q = asyncio.Queue(maxsize=128)    # the Go peer's channel capacity
    t0 = time.perf_counter()
    cons = asyncio.create_task(q_consumer(n, q))
    prod = asyncio.create_task(q_producer(n, q))
    await prod
    total = await cons
    wall = time.perf_counter() - t0
    if total != n * (n + 1) // 2:
        wrong("queue", f"sum {total}, want {n * (n + 1) // 2}")
    return wall, ""


# --- W8 W9 -------------------------------------------------------------------

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
            b"Hello, World!")


class Http(asyncio.Protocol):
    """Answers every complete header block (W8's GETs have no body)."""

    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        count = buf.count(b"\r\n\r\n")
        if count:
            self.transport.write(RESPONSE * count)
            buf = buf[buf.rindex(b"\r\n\r\n") + 4:]
        if len(buf) > 16384:          # a header over 16 KiB: not our client
            self.transport.close()
        self.buf = buf


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.transport.write(data)


async def serve(workload, port):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    proto = Http if workload == "W8" else Echo
    server = await loop.create_server(proto, "127.0.0.1", port, backlog=4096)
    print(f"LISTENING port={server.sockets[0].getsockname()[1]}", flush=True)
    await stop
    server.close()


WORKLOADS = {"W1": w1_spawn, "W2": w2_pingpong, "W3": w3_chain, "W4": w4_timers,
             "W5": w5_offload, "W6": w6_xthread, "W7": w7_memory, "yield": yield_loop,
             "lock": lock_loop, "lock_contended": w_lock_contended, "queue": w_queue}


def main():
    loop_name, workload, n, port = parse_args(sys.argv[1:])
    if loop_name == "uvloop":
        try:
            import uvloop
        except ImportError as e:
            print(f"peer.py: uvloop: {e} (interpreter {sys.executable})", file=sys.stderr)
            sys.exit(1)
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if workload in ("W8", "W9"):
        loop.run_until_complete(serve(workload, port))
        sys.exit(0)
    wall, extra = loop.run_until_complete(WORKLOADS[workload](n))
    wall = max(wall, 1e-9)
    print(f"RESULT workload={workload} peer={loop_name} n={n} wall_s={wall:.6f} "
          f"rate={n / wall:.0f}{' ' + extra if extra else ''} "
          f"python={sys.version_info[0]}.{sys.version_info[1]}", flush=True)
    # Skip the loop's teardown (and 1M finished tasks' garbage): not measured.
    sys.stdout.flush()
    import os
    os._exit(0)


if __name__ == "__main__":
    main()
