// Command peer-go is the Go peer of corio-bench: W1 spawn, W2 pingpong,
// W3 chain and yield, as shared/bench/WORKLOADS.md defines them.
//
// Usage: peer-go <W1|W2|W3|yield> [N] [--workers K]
//
// W1-W3 run with GOMAXPROCS=K (default 2); yield runs with GOMAXPROCS=1.
// Each workload checks its own result (exit 1 when wrong), times itself with
// time.Now (monotonic) around the workload only, and prints one line:
//
//	RESULT workload=<W> peer=go n=<N> wall_s=<s> rate=<ops/s> [key=value ...]
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

type args struct {
	workload string
	n        uint64
	workers  int
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: peer-go <W1|W2|W3|yield> [N] [--workers K]")
	os.Exit(2)
}

func parseArgs() args {
	a := args{workers: 2}
	haveN := false
	argv := os.Args[1:]
	for i := 0; i < len(argv); i++ {
		switch {
		case argv[i] == "--workers":
			i++
			if i >= len(argv) {
				usage()
			}
			k, err := strconv.Atoi(argv[i])
			if err != nil || k <= 0 {
				usage()
			}
			a.workers = k
		case a.workload == "":
			a.workload = argv[i]
		case !haveN:
			n, err := strconv.ParseUint(argv[i], 10, 64)
			if err != nil || n == 0 {
				usage()
			}
			a.n, haveN = n, true
		default:
			usage()
		}
	}
	switch a.workload {
	case "W1", "W2", "W3":
		if !haveN {
			a.n = 1000000
		}
	case "yield":
		if !haveN {
			a.n = 10000000
		}
	default:
		usage()
	}
	return a
}

// spawnAll is W1: spawn n goroutines from one, each returns its index (into
// its own slot: goroutines have no return value); wait for all, check the sum.
func spawnAll(n uint64) (time.Duration, error) {
	results := make([]uint64, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(int(n))
	for i := uint64(0); i < n; i++ {
		go func(i uint64) {
			results[i] = i
			wg.Done()
		}(i)
	}
	wg.Wait()
	var sum uint64
	for _, v := range results {
		sum += v
	}
	wall := time.Since(t0)
	if want := n * (n - 1) / 2; sum != want {
		return 0, fmt.Errorf("sum %d, want %d", sum, want)
	}
	return wall, nil
}

// pingpong is W2: two goroutines pass a counter back and forth through two
// unbuffered channels, n round trips.
func pingpong(n uint64) (time.Duration, error) {
	toPong := make(chan uint64)
	toPing := make(chan uint64)
	pongLast := make(chan uint64, 1)
	t0 := time.Now()
	go func() {
		var last uint64
		for i := uint64(0); i < n; i++ {
			last = <-toPong + 1
			toPing <- last
		}
		pongLast <- last
	}()
	var counter uint64
	for i := uint64(0); i < n; i++ {
		toPong <- counter
		reply := <-toPing
		if reply != counter+1 {
			return 0, fmt.Errorf("reply %d to %d", reply, counter)
		}
		counter = reply
	}
	last := <-pongLast
	wall := time.Since(t0)
	if counter != n || last != n {
		return 0, fmt.Errorf("counter %d, pong's last %d, want %d", counter, last, n)
	}
	return wall, nil
}

// chainStep is one link of W3: goroutine i starts goroutine i+1 and exits;
// goroutine n reports.
func chainStep(i, n uint64, done chan<- uint64) {
	if i == n {
		done <- i
		return
	}
	go chainStep(i+1, n, done)
}

// chain is W3: a chain of n goroutines, each starting the next.
func chain(n uint64) (time.Duration, error) {
	done := make(chan uint64, 1)
	t0 := time.Now()
	go chainStep(1, n, done)
	depth := <-done
	wall := time.Since(t0)
	if depth != n {
		return 0, fmt.Errorf("depth %d, want %d", depth, n)
	}
	return wall, nil
}

// yieldLoop is yield: one goroutine calls runtime.Gosched n times alone on
// GOMAXPROCS=1 (each call is a round trip through the scheduler).
func yieldLoop(n uint64) (time.Duration, error) {
	done := make(chan uint64, 1)
	t0 := time.Now()
	go func() {
		var count uint64
		for i := uint64(0); i < n; i++ {
			runtime.Gosched()
			count++
		}
		done <- count
	}()
	count := <-done
	wall := time.Since(t0)
	if count != n {
		return 0, fmt.Errorf("count %d, want %d", count, n)
	}
	return wall, nil
}

func main() {
	a := parseArgs()
	var wall time.Duration
	var err error
	switch a.workload {
	case "W1":
		runtime.GOMAXPROCS(a.workers)
		wall, err = spawnAll(a.n)
	case "W2":
		runtime.GOMAXPROCS(a.workers)
		wall, err = pingpong(a.n)
	case "W3":
		runtime.GOMAXPROCS(a.workers)
		wall, err = chain(a.n)
	case "yield":
		runtime.GOMAXPROCS(1)
		wall, err = yieldLoop(a.n)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "peer-go: %s: wrong result: %v\n", a.workload, err)
		os.Exit(1)
	}
	s := wall.Seconds()
	extra := fmt.Sprintf("workers=%d", a.workers)
	if a.workload == "yield" {
		extra = fmt.Sprintf("ns_per_op=%.2f", s*1e9/float64(a.n))
	}
	fmt.Printf("RESULT workload=%s peer=go n=%d wall_s=%.6f rate=%.0f %s\n",
		a.workload, a.n, s, float64(a.n)/s, extra)
}
