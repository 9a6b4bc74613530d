// perf/peers/boost_fiber/main.cpp - the Boost.Fiber peer of corio-bench:
// W1 spawn, W2 pingpong, W3 chain, W4 timers and W7 memory, as
// shared/bench/WORKLOADS.md defines them, and corio's own yield, lock,
// lock_contended and queue (perf/bench/yield.c, lock.c, queue.c).
//
// Usage: peer-boost-fiber <W1|W2|W3|W4|W7|yield|lock|lock_contended|queue>
//                         [N] [--workers K] [--spin]
//
// Scheduler: boost::fibers::algo::work_stealing on K threads (default 2):
// the main thread and K-1 helper threads all install it; the helpers then
// wait on a fiber condition variable (so they run fibers, and steal them,
// until the workload is over). work_stealing is built with suspend=true:
// an idle thread sleeps on a condition variable instead of spinning, as
// corio's, Go's and tokio's idle workers park (suspend=false spins a whole
// CPU per idle thread, which on a 2-core machine would be measured against
// the busy one). --spin selects suspend=false, Boost's default, to see
// what spinning buys.
//
// Beware: with suspend=true a helper that has gone to sleep is woken only
// when a fiber is made ready on its own scheduler from another thread (the
// algorithm's notify()); fibers spawned or readied on the main thread do
// not wake it, so a sleeping helper steals nothing: lock_contended's 4
// fibers and queue's 2 ran on the main thread alone in every run we looked
// at (with --spin they spread over the threads).
//
// yield and lock run on one thread whatever --workers says, as corio's,
// Go's and tokio's do, and so does every workload with --workers 1, on
// Boost's default single-thread scheduler,
// algo::round_robin (as tokio's run on its current_thread runtime):
// work_stealing with a thread count of 1 spins forever in pick_next once
// its ready queue is empty (it looks for a victim other than itself among
// 1), and costs ~50 ns more per yield here.
//
// Stacks: every fiber gets boost::fibers::fixedsize_stack of 64 KiB
// (malloc'd, no guard page), the size of corio's default stack. Boost
// allocates the stack when the fiber is created; corio allocates it at a
// task's first run, from a per-worker pool, with a guard page.
//
// Each workload checks its own result (exit 1 when wrong), times itself
// with std::chrono::steady_clock around the workload only, and prints:
//   RESULT workload=<W> peer=boost_fiber n=<N> wall_s=<s> rate=<ops/s> [key=value ...]
// where the extra keys are ns_per_op=<ns> for yield and lock (as corio's),
// max_late_ms= / bytes_per_task= and workers=K for W4 / W7, workers=K for
// the others.
#include <boost/fiber/all.hpp>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fibers = boost::fibers;
using steady = std::chrono::steady_clock;

static const std::size_t stack_size = 64 * 1024;

[[noreturn]] static void usage()
{
    std::fprintf(stderr, "usage: peer-boost-fiber <W1|W2|W3|W4|W7|yield|lock|lock_contended|queue>"
                         " [N] [--workers K] [--spin]\n");
    std::exit(2);
}

[[noreturn]] static void wrong(const char *w, const std::string &why)
{
    std::fprintf(stderr, "peer-boost-fiber: %s: wrong result: %s\n", w, why.c_str());
    std::fflush(nullptr);
    std::_Exit(1);
}

// spawn: a fiber with a 64 KiB fixedsize stack.
template <typename Fn> static fibers::fiber spawn(Fn &&fn)
{
    return fibers::fiber(std::allocator_arg, fibers::fixedsize_stack(stack_size),
                         std::forward<Fn>(fn));
}

static double seconds(steady::duration d)
{
    return std::chrono::duration<double>(d).count();
}

// W1: spawn n fibers from one, each writes its index into its slot (fibers
// have no return value); join each, check the sum.
static double w1_spawn(uint64_t n)
{
    std::vector<uint64_t> results(n);
    std::vector<fibers::fiber> fs;
    fs.reserve(n);
    auto t0 = steady::now();
    for (uint64_t i = 0; i < n; i++)
        fs.push_back(spawn([&results, i] { results[i] = i; }));
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        fs[i].join();
        sum += results[i];
    }
    double wall = seconds(steady::now() - t0);
    if (sum != n * (n - 1) / 2)
        wrong("W1", "sum " + std::to_string(sum) + ", want " + std::to_string(n * (n - 1) / 2));
    return wall;
}

// W2: two fibers pass a counter through two buffered_channels (capacity 2,
// the smallest Boost allows), n round trips.
static double w2_pingpong(uint64_t n)
{
    fibers::buffered_channel<uint64_t> to_pong(2), to_ping(2);
    uint64_t pong_last = 0;
    auto t0 = steady::now();
    fibers::fiber pong = spawn([&] {
        for (uint64_t i = 0; i < n; i++) {
            uint64_t v = to_pong.value_pop() + 1;
            pong_last = v;
            to_ping.push(v);
        }
    });
    uint64_t counter = 0;
    for (uint64_t i = 0; i < n; i++) {
        to_pong.push(counter);
        uint64_t reply = to_ping.value_pop();
        if (reply != counter + 1)
            wrong("W2", "reply " + std::to_string(reply) + " to " + std::to_string(counter));
        counter = reply;
    }
    pong.join();
    double wall = seconds(steady::now() - t0);
    if (counter != n || pong_last != n)
        wrong("W2", "counter " + std::to_string(counter) + ", want " + std::to_string(n));
    return wall;
}

// W3: each fiber spawns the next (detached) and exits; the n-th fulfils a
// promise the main fiber waits on.
struct chain {
    uint64_t n;
    fibers::promise<uint64_t> done;
};

static void chain_step(chain *c, uint64_t i)
{
    if (i == c->n) {
        c->done.set_value(i);
        return;
    }
    spawn([c, i] { chain_step(c, i + 1); }).detach();
}

static double w3_chain(uint64_t n)
{
    chain c{ n, {} };
    fibers::future<uint64_t> f = c.done.get_future();
    auto t0 = steady::now();
    spawn([&c] { chain_step(&c, 1); }).detach();
    uint64_t depth = f.get();
    double wall = seconds(steady::now() - t0);
    if (depth != n)
        wrong("W3", "depth " + std::to_string(depth) + ", want " + std::to_string(n));
    return wall;
}

// W4: n fibers each sleep WORKLOADS.md's pseudo-random delay; each records
// its lateness; join all.
static double w4_timers(uint64_t n, double *max_late_ms)
{
    std::vector<std::chrono::milliseconds> delays(n);
    uint64_t s = 42;
    for (auto &d : delays) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        d = std::chrono::milliseconds((s >> 33) % 100);
    }
    std::vector<steady::duration> late(n);
    std::vector<fibers::fiber> fs;
    fs.reserve(n);
    auto t0 = steady::now();
    for (uint64_t i = 0; i < n; i++)
        fs.push_back(spawn([&, i] {
            auto before = steady::now();
            boost::this_fiber::sleep_for(delays[i]);
            late[i] = steady::now() - before - delays[i];
        }));
    for (auto &f : fs)
        f.join();
    double wall = seconds(steady::now() - t0);
    steady::duration worst{ 0 };
    for (uint64_t i = 0; i < n; i++) {
        if (late[i] < steady::duration{ 0 })
            wrong("W4", "fiber " + std::to_string(i) + " woke early");
        if (late[i] > worst)
            worst = late[i];
    }
    *max_late_ms = seconds(worst) * 1e3;
    return wall;
}

// yield: one fiber calls this_fiber::yield() n times, alone on the one
// thread (the main fiber waits in join, so the ready queue holds only the
// yielding fiber: each call is a trip into the scheduler and back). Timed
// inside the fiber, as corio's is inside its task.
static double yield_loop(uint64_t n)
{
    double wall = 0;
    uint64_t count = 0;
    spawn([&] {
        auto t0 = steady::now();
        for (uint64_t i = 0; i < n; i++) {
            boost::this_fiber::yield();
            count++;
        }
        wall = seconds(steady::now() - t0);
    }).join();
    if (count != n)
        wrong("yield", "count " + std::to_string(count) + ", want " + std::to_string(n));
    return wall;
}

// lock: one fiber locks and unlocks a fibers::mutex n times (uncontended),
// counting under the lock, alone on the one thread; timed inside the fiber.
static double lock_loop(uint64_t n)
{
    fibers::mutex mtx;
    uint64_t counter = 0;
    double wall = 0;
    spawn([&] {
        auto t0 = steady::now();
        for (uint64_t i = 0; i < n; i++) {
            mtx.lock();
            counter++;
            mtx.unlock();
        }
        wall = seconds(steady::now() - t0);
    }).join();
    if (counter != n)
        wrong("lock", "counter " + std::to_string(counter) + ", want " + std::to_string(n));
    return wall;
}

// lock_contended: 4 fibers on the K work_stealing threads each do n/4 times
// lock; counter++; unlock (the last takes the remainder) on one
// fibers::mutex; nothing yields while holding it (corio's does not either).
// Boost's mutex is not a hand-over lock: unlock wakes the first waiter,
// which then competes for the lock again with any fiber that is running.
static double lock_contended(uint64_t n)
{
    const int contenders = 4;
    fibers::mutex mtx;
    uint64_t counter = 0;   // under mtx
    std::vector<fibers::fiber> fs;
    fs.reserve(contenders);
    auto t0 = steady::now();
    for (int i = 0; i < contenders; i++) {
        uint64_t ops = n / contenders + (i == contenders - 1 ? n % contenders : 0);
        fs.push_back(spawn([&mtx, &counter, ops] {
            for (uint64_t j = 0; j < ops; j++) {
                mtx.lock();
                counter++;
                mtx.unlock();
            }
        }));
    }
    for (auto &f : fs)
        f.join();
    double wall = seconds(steady::now() - t0);
    if (counter != n)
        wrong("lock_contended", "counter " + std::to_string(counter) + ", want " + std::to_string(n));
    return wall;
}

// queue: a producer fiber pushes 1..n into a buffered_channel<uint64_t> of
// capacity 128 (Boost wants a power of 2, and its ring keeps one slot free:
// it holds 127 items), one consumer fiber pops n items and sums them; the
// sum must be n(n+1)/2. The consumer is spawned first, as corio's is.
static double queue_run(uint64_t n)
{
    fibers::buffered_channel<uint64_t> ch(128);
    uint64_t sum = 0;
    bool short_read = false;
    auto t0 = steady::now();
    fibers::fiber cons = spawn([&] {
        uint64_t s = 0;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t v;
            if (ch.pop(v) != fibers::channel_op_status::success) {
                short_read = true;
                break;
            }
            s += v;
        }
        sum = s;
    });
    fibers::fiber prod = spawn([&] {
        for (uint64_t i = 1; i <= n; i++)
            if (ch.push(i) != fibers::channel_op_status::success)
                break;
    });
    prod.join();
    cons.join();
    double wall = seconds(steady::now() - t0);
    uint64_t want = n % 2 ? (n + 1) / 2 * n : n / 2 * (n + 1);
    if (short_read || sum != want)
        wrong("queue", "sum " + std::to_string(sum) + ", want " + std::to_string(want));
    return wall;
}

static uint64_t status_kb(const char *key)
{
    std::ifstream f("/proc/self/status");
    std::string line;
    size_t len = std::strlen(key);
    while (std::getline(f, line))
        if (line.compare(0, len, key) == 0 && line[len] == ':')
            return std::strtoull(line.c_str() + len + 1, nullptr, 10);
    wrong("W7", std::string("no ") + key + " in /proc/self/status");
}

// W7: n fibers that each sleep 1 s at once; (VmHWM after - VmRSS before) / n.
static double w7_memory(uint64_t n, double *bytes_per_task)
{
    uint64_t rss_before = status_kb("VmRSS");
    std::vector<fibers::fiber> fs;
    fs.reserve(n);
    std::atomic<uint64_t> done{ 0 };
    auto t0 = steady::now();
    for (uint64_t i = 0; i < n; i++)
        fs.push_back(spawn([&done] {
            boost::this_fiber::sleep_for(std::chrono::seconds(1));
            done.fetch_add(1, std::memory_order_relaxed);
        }));
    for (auto &f : fs)
        f.join();
    double wall = seconds(steady::now() - t0);
    uint64_t hwm = status_kb("VmHWM");
    if (done.load() != n)
        wrong("W7", std::to_string(done.load()) + " of " + std::to_string(n) + " finished");
    if (wall < 1.0)
        wrong("W7", "all done before the 1 s sleep");
    *bytes_per_task = double(hwm - rss_before) * 1024.0 / double(n);
    return wall;
}

// The helper threads' end: they wait (running fibers) until main says done.
static fibers::mutex end_mtx;
static fibers::condition_variable end_cv;
static bool end_flag = false;

static bool spin = false;   // --spin: work_stealing(suspend=false)

static void helper(unsigned k)
{
    fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(k, !spin);
    std::unique_lock<fibers::mutex> lk(end_mtx);
    end_cv.wait(lk, [] { return end_flag; });
}

static uint64_t parse_count(const char *s)
{
    char *end;
    if (*s == '\0' || *s == '-')
        usage();
    unsigned long long v = std::strtoull(s, &end, 10);
    if (*end != '\0' || v == 0)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    const char *w = nullptr;
    uint64_t n = 0;
    unsigned workers = 2;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--spin") == 0) {
            spin = true;
        } else if (std::strcmp(argv[i], "--workers") == 0) {
            if (++i == argc)
                usage();
            uint64_t k = parse_count(argv[i]);
            if (k > 1024)
                usage();
            workers = unsigned(k);
        } else if (!w) {
            w = argv[i];
        } else if (n == 0) {
            n = parse_count(argv[i]);
        } else {
            usage();
        }
    }
    if (!w)
        usage();
    std::string id = w;
    if (id == "W1" || id == "W2" || id == "W3") {
        if (!n)
            n = 1000000;
    } else if (id == "W4" || id == "W7") {
        if (!n)
            n = 100000;
    } else if (id == "yield" || id == "lock") {
        if (!n)
            n = 10000000;
    } else if (id == "lock_contended") {
        if (!n)
            n = 2000000;
    } else if (id == "queue") {
        if (!n)
            n = 1000000;
    } else {
        usage();
    }
    bool per_op = id == "yield" || id == "lock";   // one thread, round_robin
    unsigned threads_n = per_op ? 1 : workers;

    std::vector<std::thread> threads;
    for (unsigned i = 1; i < threads_n; i++)
        threads.emplace_back(helper, threads_n);
    // One thread: round_robin, since work_stealing(1) spins (or, in W4's
    // sleeps, hangs) in pick_next with nothing ready; see the header.
    if (threads_n == 1)
        fibers::use_scheduling_algorithm<fibers::algo::round_robin>();
    else
        fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(threads_n, !spin);

    double wall = 0, figure = 0;
    char extra[96];
    if (id == "W1")
        wall = w1_spawn(n);
    else if (id == "W2")
        wall = w2_pingpong(n);
    else if (id == "W3")
        wall = w3_chain(n);
    else if (id == "W4")
        wall = w4_timers(n, &figure);
    else if (id == "W7")
        wall = w7_memory(n, &figure);
    else if (id == "yield")
        wall = yield_loop(n);
    else if (id == "lock")
        wall = lock_loop(n);
    else if (id == "lock_contended")
        wall = lock_contended(n);
    else
        wall = queue_run(n);
    if (wall <= 0)
        wall = 1e-9;
    if (per_op)
        std::snprintf(extra, sizeof extra, "ns_per_op=%.2f", wall * 1e9 / double(n));
    else if (id == "W4")
        std::snprintf(extra, sizeof extra, "max_late_ms=%.3f workers=%u", figure, workers);
    else if (id == "W7")
        std::snprintf(extra, sizeof extra, "bytes_per_task=%.0f workers=%u", figure, workers);
    else
        std::snprintf(extra, sizeof extra, "workers=%u%s", workers, spin ? " spin=1" : "");

    {
        std::unique_lock<fibers::mutex> lk(end_mtx);
        end_flag = true;
    }
    end_cv.notify_all();
    for (auto &t : threads)
        t.join();
    std::printf("RESULT workload=%s peer=boost_fiber n=%" PRIu64 " wall_s=%.6f rate=%.0f %s\n",
                w, n, wall, double(n) / wall, extra);
    return 0;
}
