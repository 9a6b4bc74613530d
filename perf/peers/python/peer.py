#!/usr/bin/env python3
"""perf/peers/python/peer.py - the Python asyncio and uvloop peers of corio-bench.

Usage: peer.py --loop asyncio|uvloop <W1|W2|W3|W4|W7> [N] [--workers K]
       peer.py --loop asyncio|uvloop <W8|W9> serve [--port P] [--workers 1]

One script for both peers: --loop asyncio runs the standard event loop,
--loop uvloop the same code on uvloop's loop (libuv underneath). perf/run
runs both on the same interpreter, the one that can import uvloop. The loop
is single-threaded: --workers is accepted and ignored (WORKLOADS.md:
single-threaded runtimes run as they are); the servers refuse anything but 1.

  W1  create_task(N coroutines returning their index), gather, check the sum
  W2  two tasks, two asyncio.Queue(maxsize=1), N round trips of a counter
  W3  each task creates the next and exits; the N-th sets a future
  W4  N tasks each asyncio.sleep(delay) (WORKLOADS.md's delays), gather; a
      task whose sleep ended early (uvloop's timers run on libuv's millisecond
      clock) sleeps the rest, so none wakes early; max lateness reported
  W7  N tasks each asyncio.sleep(1) at once; (VmHWM after - VmRSS before) / N
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
import time

USAGE = ("usage: peer.py --loop asyncio|uvloop <W1|W2|W3|W4|W7> [N] [--workers K]\n"
         "       peer.py --loop asyncio|uvloop <W8|W9> serve [--port P] [--workers 1]")
DEFAULT_N = {"W1": 1000000, "W2": 1000000, "W3": 1000000, "W4": 100000, "W7": 100000}


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
             "W7": w7_memory}


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
