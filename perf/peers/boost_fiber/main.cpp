// perf/peers/boost_fiber/main.cpp - the Boost.Fiber peer of corio-bench:
// W1 spawn, W2 pingpong, W3 chain, W4 timers and W7 memory, as
// shared/bench/WORKLOADS.md defines them.
//
// Usage: peer-boost-fiber <W1|W2|W3|W4|W7> [N] [--workers K] [--spin]
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
// Stacks: every fiber gets boost::fibers::fixedsize_stack of 64 KiB
// (malloc'd, no guard page), the size of corio's default stack. Boost
// allocates the stack when the fiber is created; corio allocates it at a
// task's first run, from a per-worker pool, with a guard page.
//
// Each workload checks its own result (exit 1 when wrong), times itself
// with std::chrono::steady_clock around the workload only, and prints:
//   RESULT workload=<W> peer=boost_fiber n=<N> wall_s=<s> rate=<ops/s> [key=value ...]
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
    std::fprintf(stderr, "usage: peer-boost-fiber <W1|W2|W3|W4|W7> [N] [--workers K] [--spin]\n");
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
    } else {
        usage();
    }

    std::vector<std::thread> threads;
    for (unsigned i = 1; i < workers; i++)
        threads.emplace_back(helper, workers);
    fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(workers, !spin);

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
    else
        wall = w7_memory(n, &figure);
    if (id == "W4")
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
    if (wall <= 0)
        wall = 1e-9;
    std::printf("RESULT workload=%s peer=boost_fiber n=%" PRIu64 " wall_s=%.6f rate=%.0f %s\n",
                w, n, wall, double(n) / wall, extra);
    return 0;
}
