// Command peer-go is the Go peer of corio-bench: W1 spawn, W2 pingpong,
// W3 chain, yield, W4 timers, W7 memory, lock, lock_contended, queue, and
// the W8 http and W9 echo servers, as shared/bench/WORKLOADS.md and
// perf/bench (lock.c, queue) define them.
//
// Usage: peer-go <W1|W2|W3|W4|W7|yield|lock|lock_contended|queue> [N] [--workers K]
//
//	peer-go <W8|W9> serve [--port P] [--workers K]
//
// W1-W4, W7, lock_contended, queue and the servers run with GOMAXPROCS=K
// (default 2); yield and lock run with GOMAXPROCS=1. Each workload checks its own result (exit 1 when wrong),
// times itself with time.Now (monotonic) around the workload only, and prints
// one line:
//
//	RESULT workload=<W> peer=go n=<N> wall_s=<s> rate=<ops/s> [key=value ...]
//
// The servers listen on 127.0.0.1:P (P=0: the kernel picks a port), print
// "LISTENING port=<P>" on stdout once listening, serve until SIGTERM or
// SIGINT and then exit 0. perf/run drives them with its load generators and
// measures them from outside (see perf/README.md).
package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type args struct {
	workload string
	n        uint64
	workers  int
	serve    bool
	port     int
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: peer-go <W1|W2|W3|W4|W7|yield|lock|lock_contended|queue> [N] [--workers K]\n"+
		"       peer-go <W8|W9> serve [--port P] [--workers K]")
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
		case argv[i] == "--port":
			i++
			if i >= len(argv) {
				usage()
			}
			p, err := strconv.Atoi(argv[i])
			if err != nil || p < 0 || p > 65535 {
				usage()
			}
			a.port = p
		case a.workload == "":
			a.workload = argv[i]
		case argv[i] == "serve" && !a.serve && !haveN:
			a.serve = true
		case !haveN && !a.serve:
			n, err := strconv.ParseUint(argv[i], 10, 64)
			if err != nil || n == 0 {
				usage()
			}
			a.n, haveN = n, true
		default:
			usage()
		}
	}
	server := a.workload == "W8" || a.workload == "W9"
	if server != a.serve {
		usage() // the servers need "serve", the others must not have it
	}
	switch a.workload {
	case "W1", "W2", "W3":
		if !haveN {
			a.n = 1000000
		}
	case "W4", "W7":
		if !haveN {
			a.n = 100000
		}
	case "yield", "lock":
		if !haveN {
			a.n = 10000000
		}
	case "lock_contended":
		if !haveN {
			a.n = 2000000
		}
	case "queue":
		if !haveN {
			a.n = 1000000
		}
	case "W8", "W9":
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

// lockLoop is lock: one goroutine locks and unlocks a sync.Mutex n times
// (uncontended) on GOMAXPROCS=1, counting under the lock.
func lockLoop(n uint64) (time.Duration, error) {
	var mu sync.Mutex
	var counter uint64
	done := make(chan struct{})
	t0 := time.Now()
	go func() {
		for i := uint64(0); i < n; i++ {
			mu.Lock()
			counter++
			mu.Unlock()
		}
		close(done)
	}()
	<-done
	wall := time.Since(t0)
	if counter != n {
		return 0, fmt.Errorf("counter %d, want %d", counter, n)
	}
	return wall, nil
}

// lockContended is lock_contended: 4 goroutines each do n/4 times
// Lock; counter++; Unlock (the last takes the remainder) on GOMAXPROCS=K.
func lockContended(n uint64) (time.Duration, error) {
	const contenders = 4
	var mu sync.Mutex
	var counter uint64
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(contenders)
	for i := uint64(0); i < contenders; i++ {
		ops := n / contenders
		if i == contenders-1 {
			ops += n % contenders
		}
		go func(ops uint64) {
			for j := uint64(0); j < ops; j++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}(ops)
	}
	wg.Wait()
	wall := time.Since(t0)
	if counter != n {
		return 0, fmt.Errorf("counter %d, want %d", counter, n)
	}
	return wall, nil
}

// queue is queue: a producer goroutine sends 1..n through a buffered
// channel of capacity 128 to one consumer goroutine, which checks the sum.
func queue(n uint64) (time.Duration, error) {
	ch := make(chan uint64, 128)
	sum := make(chan uint64, 1)
	t0 := time.Now()
	go func() {
		var s uint64
		for v := range ch {
			s += v
		}
		sum <- s
	}()
	go func() {
		for i := uint64(1); i <= n; i++ {
			ch <- i
		}
		close(ch)
	}()
	got := <-sum
	wall := time.Since(t0)
	if want := n * (n + 1) / 2; got != want {
		return 0, fmt.Errorf("sum %d, want %d", got, want)
	}
	return wall, nil
}

// w4Delays returns the n delays of W4: WORKLOADS.md's LCG from s = 42,
// delay_ms = (s >> 33) % 100 (uint64 arithmetic wraps mod 2^64).
func w4Delays(n uint64) []time.Duration {
	d := make([]time.Duration, n)
	s := uint64(42)
	for i := range d {
		s = s*6364136223846793005 + 1442695040888963407
		d[i] = time.Duration((s>>33)%100) * time.Millisecond
	}
	return d
}

// timers is W4: n goroutines each sleep their delay; wait for all. Each one
// records its lateness (time after the sleep - time before - delay); a
// negative lateness (an early wake-up) is a wrong result.
func timers(n uint64) (time.Duration, time.Duration, error) {
	delays := w4Delays(n)
	late := make([]time.Duration, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(int(n))
	for i := range delays {
		go func(i int) {
			before := time.Now()
			time.Sleep(delays[i])
			late[i] = time.Since(before) - delays[i]
			wg.Done()
		}(i)
	}
	wg.Wait()
	wall := time.Since(t0)
	var maxLate time.Duration
	for i, l := range late {
		if l < 0 {
			return 0, 0, fmt.Errorf("task %d woke %v early", i, -l)
		}
		if l > maxLate {
			maxLate = l
		}
	}
	return wall, maxLate, nil
}

// procStatusKB reads one "Key:   123 kB" line of /proc/self/status.
func procStatusKB(key string) (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key+":") {
			continue
		}
		fields := strings.Fields(line[len(key)+1:])
		if len(fields) < 1 {
			break
		}
		return strconv.ParseUint(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", key)
}

// memory is W7: n goroutines that each sleep 1 s concurrently; the memory
// figure is (VmHWM after - VmRSS before) / n.
func memory(n uint64) (time.Duration, float64, error) {
	rssBefore, err := procStatusKB("VmRSS")
	if err != nil {
		return 0, 0, err
	}
	var wg sync.WaitGroup
	var done uint64
	t0 := time.Now()
	wg.Add(int(n))
	for i := uint64(0); i < n; i++ {
		go func() {
			time.Sleep(time.Second)
			atomic.AddUint64(&done, 1)
			wg.Done()
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	hwm, err := procStatusKB("VmHWM")
	if err != nil {
		return 0, 0, err
	}
	if done != n {
		return 0, 0, fmt.Errorf("%d of %d goroutines finished", done, n)
	}
	if wall < time.Second {
		return 0, 0, fmt.Errorf("all done after %v, before the 1 s sleep", wall)
	}
	return wall, float64(hwm-rssBefore) * 1024 / float64(n), nil
}

// listen opens the server socket and announces it on stdout (unbuffered).
func listen(port int) net.Listener {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "peer-go: listen: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("LISTENING port=%d\n", ln.Addr().(*net.TCPAddr).Port)
	return ln
}

// serveUntilSignal runs serve in its own goroutine and exits 0 on SIGTERM or
// SIGINT (exit 1 if serve itself stops).
func serveUntilSignal(serve func() error) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	failed := make(chan error, 1)
	go func() { failed <- serve() }()
	select {
	case <-sig:
		os.Exit(0)
	case err := <-failed:
		fmt.Fprintf(os.Stderr, "peer-go: server stopped: %v\n", err)
		os.Exit(1)
	}
}

var helloBody = []byte("Hello, World!")

// httpServer is W8: net/http, the idiomatic Go server (it handles keep-alive
// and pipelined requests, one at a time per connection, and adds a Date
// header of its own).
func httpServer(port int) {
	ln := listen(port)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", "13")
		w.Write(helloBody)
	})
	srv := &http.Server{Handler: mux}
	serveUntilSignal(func() error { return srv.Serve(ln) })
}

// echoConn copies everything it reads back to the connection.
func echoConn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16384)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a reset: the client is gone
		}
	}
}

// echoServer is W9: one goroutine per connection, read and write back (Go's
// net sets TCP_NODELAY on every TCP connection).
func echoServer(port int) {
	ln := listen(port)
	serveUntilSignal(func() error {
		for {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			go echoConn(c)
		}
	})
}

func main() {
	a := parseArgs()
	var wall time.Duration
	var err error
	extra := fmt.Sprintf("workers=%d", a.workers)
	runtime.GOMAXPROCS(a.workers)
	switch a.workload {
	case "W1":
		wall, err = spawnAll(a.n)
	case "W2":
		wall, err = pingpong(a.n)
	case "W3":
		wall, err = chain(a.n)
	case "W4":
		var maxLate time.Duration
		wall, maxLate, err = timers(a.n)
		extra = fmt.Sprintf("max_late_ms=%.3f workers=%d", maxLate.Seconds()*1e3, a.workers)
	case "W7":
		var perTask float64
		wall, perTask, err = memory(a.n)
		extra = fmt.Sprintf("bytes_per_task=%.0f workers=%d", perTask, a.workers)
	case "W8":
		httpServer(a.port)
	case "W9":
		echoServer(a.port)
	case "yield":
		runtime.GOMAXPROCS(1)
		wall, err = yieldLoop(a.n)
	case "lock":
		runtime.GOMAXPROCS(1)
		wall, err = lockLoop(a.n)
	case "lock_contended":
		wall, err = lockContended(a.n)
	case "queue":
		wall, err = queue(a.n)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "peer-go: %s: wrong result: %v\n", a.workload, err)
		os.Exit(1)
	}
	s := wall.Seconds()
	if a.workload == "yield" || a.workload == "lock" {
		extra = fmt.Sprintf("ns_per_op=%.2f", s*1e9/float64(a.n))
	}
	fmt.Printf("RESULT workload=%s peer=go n=%d wall_s=%.6f rate=%.0f %s\n",
		a.workload, a.n, s, float64(a.n)/s, extra)
}
