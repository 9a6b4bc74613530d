#!/usr/bin/env python3
"""perf/peers/python/ppool.py - Python's ProcessPoolExecutor doing what
corio-bench's ppool_roundtrip and ppool_fanout do, with the same RESULT line.

  ppool.py ppool_roundtrip [N]      one submit at a time of an empty function,
                             N round trips (default 20,000), 1 worker process
  ppool.py ppool_fanout [N]  N small tasks (x -> x + 1) submitted at once
                             over max_workers=2, all awaited and checked
                             (default 100,000)

The pool is started and warmed up (one call) before the clock starts, as
corio's are. Start method: Python's default on Linux (fork for 3.11).
"""
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def empty():
    return None


def inc(x):
    return x + 1


def main():
    w = sys.argv[1] if len(sys.argv) > 1 else "ppool_roundtrip"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else (20000 if w == "ppool_roundtrip" else 100000)
    procs = 1 if w == "ppool_roundtrip" else 2
    with ProcessPoolExecutor(max_workers=procs) as ex:
        ex.submit(empty).result()
        t0 = time.monotonic()
        if w == "ppool_roundtrip":
            for _ in range(n):
                ex.submit(empty).result()
        elif w == "ppool_fanout":
            fs = [ex.submit(inc, i) for i in range(n)]
            for i, f in enumerate(fs):
                if f.result() != i + 1:
                    sys.exit("wrong result")
        else:
            sys.exit("unknown workload " + w)
        wall = time.monotonic() - t0
    print(f"RESULT workload={w} peer=python n={n} wall_s={wall:.6f} rate={n / wall:.0f} "
          f"procs={procs}")


if __name__ == "__main__":
    main()
