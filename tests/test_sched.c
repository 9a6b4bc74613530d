/* tests/test_sched.c - the work-stealing scheduler: many tasks, stealing,
 * no lost wake-ups, asyncio's order on one worker, fairness budget, idle
 * workers that sleep.
 *
 * Sizes shrink under the sanitizers (they are 5-20x slower) but every
 * behaviour is still exercised. CORIO_TEST_PINGPONG_S overrides the
 * ping-pong duration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <corio/corio.h>

#define V(n) ((void *)(uintptr_t)(n))
#include "internal.h"   /* white-box: sched_stale_queued_view_loses_no_wakeup */

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif
/* TSan makes each new task fiber cost ~0.5 ms: far fewer tasks there. */
#if defined(__SANITIZE_THREAD__)
#define MANY_TASKS 20000
#elif defined(__SANITIZE_ADDRESS__)
#define MANY_TASKS 100000
#else
#define MANY_TASKS 1000000
#endif

static corio_rt_options workers(unsigned n)
{
    return (corio_rt_options){.workers = n};
}

/* ---- a million tasks ---- */

struct many {
    size_t n;
    uintptr_t sum;
    int rc;
};

static void *return_index(void *arg)
{
    return arg;
}

static void *spawn_many(void *arg)
{
    struct many *m = arg;
    corio_task **ts = malloc(m->n * sizeof *ts);
    if (!ts) {
        m->rc = -ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++) {
        m->rc = corio_spawn(&ts[i], return_index, (void *)(uintptr_t)i);
        if (m->rc < 0)
            return NULL;
    }
    for (size_t i = 0; i < m->n; i++) {
        void *r = NULL;
        int rc = corio_await(ts[i], &r);
        if (rc < 0 && m->rc == 0)
            m->rc = rc;
        m->sum += (uintptr_t)r;
        corio_task_unref(ts[i]);
    }
    free(ts);
    return NULL;
}

static void sched_million_tasks(void **state)
{
    (void)state;
    struct many m = {.n = MANY_TASKS};
    corio_rt_options o = workers(2);
    assert_int_equal(corio_run(spawn_many, &m, &o, NULL), 0);
    assert_int_equal(m.rc, 0);
    assert_true(m.sum == (uintptr_t)m.n * (m.n - 1) / 2);
}

/* ---- stealing: tasks run on every worker ---- */

#define MAX_W 8

struct seen {
    _Atomic unsigned on[MAX_W];
};

static void spin_us(unsigned us)
{
    uint64_t end = corio_time_ns() + us * 1000ull;
    while (corio_time_ns() < end)
        ;
}

static void *busy_record(void *arg)
{
    struct seen *s = arg;
    spin_us(50);
    int id = corio_worker_id();
    if (id >= 0 && id < MAX_W)
        atomic_fetch_add(&s->on[id], 1);
    return NULL;
}

static void *spawn_busy(void *arg)
{
    enum { N = 2000 };
    static corio_task *ts[N];
    for (int i = 0; i < N; i++)
        if (corio_spawn(&ts[i], busy_record, arg) < 0)
            return NULL;
    corio_gather_tasks(ts, N, 0, NULL, NULL);
    for (int i = 0; i < N; i++)
        corio_task_unref(ts[i]);
    return NULL;
}

static void sched_stealing_runs_tasks_on_every_worker(void **state)
{
    (void)state;
    for (unsigned nw = 2; nw <= 4; nw *= 2) {
        struct seen s = {0};
        corio_rt_options o = workers(nw);
        assert_int_equal(corio_run(spawn_busy, &s, &o, NULL), 0);
        unsigned total = 0;
        for (unsigned i = 0; i < nw; i++) {
            assert_true(atomic_load(&s.on[i]) > 0);
            total += atomic_load(&s.on[i]);
        }
        assert_int_equal(total, 2000);
    }
}

/* ---- no lost wake-up: ping-pong across workers with a watchdog ---- */

struct pingpong {
    corio_future *slot[2];      /* slot[i]: the future task i waits on next */
    _Atomic uint64_t rounds;
    _Atomic int stop;
    int rc;
};

static void *pinger(void *arg, int me)
{
    struct pingpong *p = arg;
    for (;;) {
        corio_future *mine = p->slot[me];
        void *v = NULL;
        int rc = corio_await(mine, &v);
        corio_future_unref(mine);
        if (rc < 0) {
            p->rc = rc;
            return NULL;
        }
        if (v == (void *)2)
            return NULL;
        corio_future *next;
        if (corio_future_create(&next) < 0) {
            p->rc = -ENOMEM;
            return NULL;
        }
        p->slot[me] = next;
        atomic_fetch_add(&p->rounds, 1);
        void *msg = atomic_load(&p->stop) ? (void *)2 : (void *)1;
        corio_future *other = p->slot[!me];
        /* The partner published its next future before completing ours;
         * hold a reference while completing it, since the partner frees it
         * as soon as it wakes. */
        corio_future_ref(other);
        corio_future_set_result(other, msg);
        corio_future_unref(other);
        if (msg == (void *)2) {
            corio_future_unref(p->slot[me]);
            return NULL;
        }
    }
}

static void *ping0(void *arg) { return pinger(arg, 0); }
static void *ping1(void *arg) { return pinger(arg, 1); }

static void *pingpong_main(void *arg)
{
    struct pingpong *p = arg;
    corio_future_create(&p->slot[0]);
    corio_future_create(&p->slot[1]);
    corio_task *a, *b;
    corio_spawn(&a, ping0, p);
    corio_spawn(&b, ping1, p);
    corio_future *first = corio_future_ref(p->slot[0]);   /* ping0 frees it once woken */
    corio_future_set_result(first, (void *)1);
    corio_future_unref(first);
    corio_await(a, NULL);
    corio_await(b, NULL);
    corio_task_unref(a);
    corio_task_unref(b);
    return NULL;
}

struct watchdog {
    struct pingpong *p;
    double seconds;
    _Atomic int done;
};

/* A plain thread: stops the ping-pong after the run time and fails the
 * process if the round count stops moving (a lost wake-up hangs it). */
static void *watch(void *arg)
{
    struct watchdog *wd = arg;
    uint64_t last = 0;
    int still = 0;
    for (double t = 0; !atomic_load(&wd->done); t += 0.1) {
        usleep(100000);
        if (t >= wd->seconds)
            atomic_store(&wd->p->stop, 1);
        uint64_t now = atomic_load(&wd->p->rounds);
        still = now == last ? still + 1 : 0;
        last = now;
        if (still >= 50) {
            fprintf(stderr, "ping-pong stalled after %llu rounds: lost wake-up\n",
                    (unsigned long long)now);
            _exit(1);
        }
    }
    return NULL;
}

static void sched_pingpong_loses_no_wakeup(void **state)
{
    (void)state;
    const char *env = getenv("CORIO_TEST_PINGPONG_S");
    double secs = env ? atof(env) : (SANITIZED ? 3.0 : 10.0);
    struct pingpong p = {0};
    struct watchdog wd = {.p = &p, .seconds = secs};
    pthread_t th;
    pthread_create(&th, NULL, watch, &wd);
    corio_rt_options o = workers(2);
    int rc = corio_run(pingpong_main, &p, &o, NULL);
    atomic_store(&wd.done, 1);
    pthread_join(th, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(p.rc, 0);
    assert_true(atomic_load(&p.rounds) > 1000);
}

/* ---- one worker: strict FIFO, like asyncio, past the local queue's size ---- */

#define FIFO_TASKS 1000
#define FIFO_STEPS 3

struct fifo_log {
    int entries[FIFO_TASKS * FIFO_STEPS];
    int n;
};

struct fifo_arg {
    struct fifo_log *log;
    int id;
};

static void *fifo_task(void *arg)
{
    struct fifo_arg *a = arg;
    for (int s = 0; s < FIFO_STEPS; s++) {
        a->log->entries[a->log->n++] = a->id;
        corio_yield();
    }
    return NULL;
}

static void *fifo_main(void *arg)
{
    static struct fifo_arg args[FIFO_TASKS];
    static corio_task *ts[FIFO_TASKS];
    for (int i = 0; i < FIFO_TASKS; i++) {
        args[i] = (struct fifo_arg){.log = arg, .id = i};
        corio_spawn(&ts[i], fifo_task, &args[i]);
    }
    corio_gather_tasks(ts, FIFO_TASKS, 0, NULL, NULL);
    for (int i = 0; i < FIFO_TASKS; i++)
        corio_task_unref(ts[i]);
    return NULL;
}

static void sched_one_worker_runs_in_ready_order(void **state)
{
    (void)state;
    static struct fifo_log log;
    log.n = 0;
    corio_rt_options o = workers(1);
    assert_int_equal(corio_run(fifo_main, &log, &o, NULL), 0);
    assert_int_equal(log.n, FIFO_TASKS * FIFO_STEPS);
    for (int i = 0; i < log.n; i++)
        assert_int_equal(log.entries[i], i % FIFO_TASKS);
}

/* ---- a yielder alone on its worker still lets the loop run ----
 * Such a yield starts the task's next step without a switch (core/sched.c
 * switch_away): callbacks it queued must still run, on the worker's own
 * stack, and timers must still fire, though the worker never parks. */

#define LONE_MAX_YIELDS 100000000L

struct lone {
    _Atomic int soon_ran, later_ran;
    corio_task *task_in_soon;
    long yields;
};

static void lone_soon(void *arg)
{
    struct lone *l = arg;
    l->task_in_soon = corio_current_task();
    atomic_store(&l->soon_ran, 1);
}

static void lone_later(void *arg)
{
    atomic_store(&((struct lone *)arg)->later_ran, 1);
}

static void *lone_yielder(void *arg)
{
    struct lone *l = arg;
    assert_int_equal(corio_call_later(NULL, 1000000, lone_later, l), 0);   /* 1 ms */
    assert_int_equal(corio_call_soon(NULL, lone_soon, l), 0);
    while (!(atomic_load(&l->soon_ran) && atomic_load(&l->later_ran)) &&
           l->yields < LONE_MAX_YIELDS) {
        assert_int_equal(corio_yield(), 0);
        l->yields++;
    }
    return NULL;
}

static void sched_lone_yielder_lets_callbacks_and_timers_run(void **state)
{
    (void)state;
    for (unsigned n = 1; n <= 2; n++) {
        struct lone l = {.task_in_soon = (corio_task *)&l};
        corio_rt_options o = workers(n);
        assert_int_equal(corio_run(lone_yielder, &l, &o, NULL), 0);
        assert_true(atomic_load(&l.soon_ran));
        assert_true(atomic_load(&l.later_ran));
        assert_null(l.task_in_soon);   /* a callback runs outside every task */
        assert_true(l.yields < LONE_MAX_YIELDS);
    }
}

/* ---- direct switches keep the scheduler's order and context ----
 * A switching task takes the next task itself (core/sched.c switch_away);
 * what the scheduler fiber did between the two steps must still happen in
 * the same order, outside any task. */

static char direct_log[128];

static void direct_note(const char *s)
{
    strcat(direct_log, s);
    strcat(direct_log, " ");
}

static void *direct_never_runs(void *arg)
{
    (void)arg;
    direct_note("B-ran");
    return NULL;
}

static void direct_done_cb(corio_future *f, void *arg)
{
    (void)f;
    (void)arg;
    direct_note("cb");
}

static corio_task *direct_task_in_handler;
static int direct_handler_calls;

static void direct_handler(corio_rt *rt, const corio_exception_context *c, void *arg)
{
    (void)rt;
    (void)c;
    (void)arg;
    direct_task_in_handler = corio_current_task();
    direct_handler_calls++;
}

static void *direct_failer(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)corio_raise(-EIO, "lost");
}

static void *direct_main(void *arg)
{
    (void)arg;
    /* B, cancelled before it ever ran, is next in line when M yields: its
     * end (and so its done callback) comes after M is queued again. */
    corio_task *b;
    assert_int_equal(corio_spawn(&b, direct_never_runs, NULL), 0);
    assert_int_equal(corio_task_cancel(b, NULL), 1);
    assert_int_equal(corio_future_add_done_callback(corio_task_future(b), direct_done_cb, NULL), 0);
    direct_note("M-yield");
    assert_int_equal(corio_yield(), 0);
    direct_note("M-resumed");
    assert_int_equal(corio_yield(), 0);
    assert_int_equal(corio_yield(), 0);
    assert_true(corio_task_cancelled(b));
    corio_task_unref(b);
    /* A failed fire-and-forget task is reported when it is freed, right
     * after it ends: outside every task. */
    assert_int_equal(corio_spawn(NULL, direct_failer, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(corio_yield(), 0);
    return NULL;
}

static void sched_direct_switches_keep_order_and_context(void **state)
{
    (void)state;
    direct_log[0] = 0;
    direct_task_in_handler = (corio_task *)direct_log;
    direct_handler_calls = 0;
    corio_rt_options o = workers(1);
    corio_rt *rt;
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    corio_rt_set_exception_handler(rt, direct_handler, NULL);
    assert_int_equal(corio_rt_run(rt, direct_main, NULL, NULL), 0);
    corio_rt_destroy(rt);
    assert_string_equal(direct_log, "M-yield M-resumed cb ");
    assert_int_equal(direct_handler_calls, 1);
    assert_null(direct_task_in_handler);
}

/* ---- fairness: 128 ready operations in a row force a yield ---- */

struct budget {
    corio_future *ready;
    _Atomic int other_ran;
    int seen_before_end;
};

static void *other(void *arg)
{
    struct budget *b = arg;
    atomic_store(&b->other_ran, 1);
    return NULL;
}

static void *greedy(void *arg)
{
    struct budget *b = arg;
    corio_future_create(&b->ready);
    corio_future_set_result(b->ready, NULL);
    corio_spawn(NULL, other, b);
    for (int i = 0; i < 1000; i++)
        corio_await(b->ready, NULL);   /* never suspends: it is done */
    b->seen_before_end = atomic_load(&b->other_ran);
    corio_future_unref(b->ready);
    return NULL;
}

static void sched_budget_forces_a_yield(void **state)
{
    (void)state;
    struct budget b = {0};
    corio_rt_options o = workers(1);
    corio_rt *rt;
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_int_equal(corio_rt_run(rt, greedy, &b, NULL), 0);
    assert_int_equal(b.seen_before_end, 1);
    corio_worker_metrics m;
    assert_int_equal(corio_rt_worker_metrics(rt, 0, &m), 0);
    assert_true(m.budget_yields >= 7);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

/* ---- an idle runtime sleeps ---- */

/* The main task awaits a future that a plain thread (@fn) completes after
 * 0.4 s of the runtime sitting idle; idle_cpu is the process CPU time over
 * those 0.4 s. */
struct idle {
    void *(*fn)(void *);
    corio_rt *rt;
    corio_future *f;
    pthread_t th;
    int bad;
    double idle_cpu;
};

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void idle_then_complete(struct idle *i)
{
    double before = cpu_seconds();
    usleep(400000);
    i->idle_cpu = cpu_seconds() - before;
    corio_future_set_result(i->f, (void *)7);
}

static void *complete_later(void *arg)
{
    idle_then_complete(arg);
    return NULL;
}

static void *plus_one(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

/* Workers that ran work handed in by a plain thread spin a little before
 * they park (core/sched.c spin_for_hand_in): bounded, so a runtime left
 * idle after a burst of run_coroutine_threadsafe() still uses no CPU. */
#define HAND_INS 2000

static void *hand_in_then_complete_later(void *arg)
{
    struct idle *i = arg;
    for (uintptr_t x = 0; x < HAND_INS; x++) {
        corio_cfuture *cf;
        void *v = NULL;
        if (corio_run_coroutine_threadsafe(i->rt, plus_one, (void *)x, &cf) < 0) {
            i->bad++;
            continue;
        }
        if (corio_cfuture_result(cf, CORIO_WAIT_FOREVER, &v) < 0 || v != (void *)(x + 1))
            i->bad++;
        corio_cfuture_unref(cf);
    }
    idle_then_complete(i);
    return NULL;
}

static void *idle_main(void *arg)
{
    struct idle *i = arg;
    i->rt = corio_get_running_rt();
    corio_future_create(&i->f);
    pthread_create(&i->th, NULL, i->fn, i);
    void *v = NULL;
    int rc = corio_await(i->f, &v);
    pthread_join(i->th, NULL);
    corio_future_unref(i->f);
    return rc == 0 ? v : NULL;
}

/* Returns the CPU time of the whole run. */
static double idle_run(void *(*fn)(void *))
{
    struct idle i = {.fn = fn};
    corio_rt_options o = workers(2);
    void *v = NULL;
    double before = cpu_seconds();
    assert_int_equal(corio_run(idle_main, &i, &o, &v), 0);
    double used = cpu_seconds() - before;
    assert_ptr_equal(v, (void *)7);
    assert_int_equal(i.bad, 0);
    /* 0.4 s of waiting on two workers: a spinning worker would burn ~0.8 s. */
    assert_true(i.idle_cpu < 0.15);
    return used;
}

static void sched_idle_workers_use_no_cpu(void **state)
{
    (void)state;
    assert_true(idle_run(complete_later) < 0.15);   /* start and shutdown included */
}

static void sched_idle_after_hand_ins_uses_no_cpu(void **state)
{
    (void)state;
    idle_run(hand_in_then_complete_later);
}

/* ---- a tree of tasks on many workers ---- */

static void *tree(void *arg)
{
    uintptr_t depth = (uintptr_t)arg;
    if (depth == 0)
        return (void *)1;
    corio_task *kids[4];
    for (int i = 0; i < 4; i++)
        if (corio_spawn(&kids[i], tree, (void *)(depth - 1)) < 0)
            return NULL;
    void *res[4];
    corio_gather_tasks(kids, 4, 0, res, NULL);
    uintptr_t sum = 0;
    for (int i = 0; i < 4; i++) {
        sum += (uintptr_t)res[i];
        corio_task_unref(kids[i]);
    }
    return (void *)sum;
}

static void sched_task_tree_on_many_workers(void **state)
{
    (void)state;
    uintptr_t depth = SANITIZED ? 6 : 8;
    for (unsigned nw = 1; nw <= 4; nw++) {
        corio_rt_options o = workers(nw);
        void *v = NULL;
        assert_int_equal(corio_run(tree, (void *)depth, &o, &v), 0);
        assert_true((uintptr_t)v == (uintptr_t)1 << (2 * depth));
    }
}

/* ---- a mass wake-up from one worker loses nobody ---- */

/* One completion wakes far more tasks than a local queue holds (256): the
 * overflow waits in the global woken queue (core/sched.c push_woken) and
 * must all run, on any worker. With @spin the waking worker then stays in
 * one long step (it spins, never awaits): the tasks its full local queue
 * had no room for must still run meanwhile, on the other workers. */
#define MASS_WAKE (SANITIZED ? 1000 : 5000)

struct mass {
    bool spin;
    corio_future *gate;
    atomic_int parked, resumed;
    int resumed_while_busy;
};

static void *wait_gate(void *arg)
{
    struct mass *m = arg;
    atomic_fetch_add(&m->parked, 1);
    int rc = corio_await(m->gate, NULL);
    atomic_fetch_add(&m->resumed, 1);
    return (void *)(intptr_t)rc;
}

static void *mass_wake(void *arg)
{
    struct mass *m = arg;
    corio_task **ts = malloc(MASS_WAKE * sizeof *ts);
    if (!ts || corio_future_create(&m->gate) < 0)
        return (void *)-1;
    for (int i = 0; i < MASS_WAKE; i++)
        if (corio_spawn(&ts[i], wait_gate, m) < 0)
            return (void *)-1;
    while (atomic_load(&m->parked) < MASS_WAKE)
        corio_sleep(CORIO_MSEC);
    corio_sleep(5 * CORIO_MSEC);   /* the last ones are suspended, not just counted */
    corio_future_set_result(m->gate, NULL);
    uint64_t until = corio_time_ns() + 10 * CORIO_SEC;
    while (m->spin && atomic_load(&m->resumed) < MASS_WAKE && corio_time_ns() < until)
        ;
    m->resumed_while_busy = atomic_load(&m->resumed);
    intptr_t bad = 0;
    for (int i = 0; i < MASS_WAKE; i++) {
        void *v = (void *)-1;
        if (corio_await(ts[i], &v) < 0 || v != NULL)
            bad++;
        corio_task_unref(ts[i]);
    }
    free(ts);
    corio_future_unref(m->gate);
    return (void *)bad;
}

static void run_mass_wake(struct mass *m, unsigned nworkers)
{
    corio_rt_options o = workers(nworkers);
    void *bad = (void *)-1;
    assert_int_equal(corio_run(mass_wake, m, &o, &bad), 0);
    assert_int_equal((intptr_t)bad, 0);
    assert_int_equal(atomic_load(&m->resumed), MASS_WAKE);
}

static void sched_mass_wakeup_runs_every_task(void **state)
{
    (void)state;
    for (unsigned nw = 2; nw <= 4; nw += 2) {
        struct mass m = {0};
        run_mass_wake(&m, nw);
    }
}

static void sched_mass_wakeup_runs_while_waker_is_busy(void **state)
{
    (void)state;
    struct mass m = {.spin = true};
    run_mass_wake(&m, 2);
    assert_int_equal(m.resumed_while_busy, MASS_WAKE);
}

/* ---- a task in a busy worker's LIFO slot still runs ---- */

struct rescue {
    _Atomic int flag;
    int ok;
    double waited_s;
};

static void *set_flag(void *arg)
{
    atomic_store(&((struct rescue *)arg)->flag, 1);
    return NULL;
}

/* Spawns into its own worker's LIFO slot, then spins (never awaits) until
 * that task has run: only another worker can run it. */
static void *spin_on_child(void *arg)
{
    struct rescue *r = arg;
    uint64_t start = corio_time_ns();
    corio_spawn(NULL, set_flag, r);
    while (!atomic_load(&r->flag) && corio_time_ns() - start < 5000000000ull)
        ;
    r->ok = atomic_load(&r->flag);
    r->waited_s = (double)(corio_time_ns() - start) / 1e9;
    return NULL;
}

static void sched_monitor_rescues_lifo_behind_long_step(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        struct rescue r = {0};
        corio_rt_options o = workers(2);
        assert_int_equal(corio_run(spin_on_child, &r, &o, NULL), 0);
        if (!r.ok)
            fail_msg("the task behind a spinning worker never ran (waited %.2f s)", r.waited_s);
    }
}

/* The same for a task waiting in the yield slot: it spends its budget on
 * ready awaits (as a producer into a queue that never fills does) with only
 * the LIFO slot queued, so it waits there behind that task, which then
 * spins until the first one has run. */
static void *spin_until_flag(void *arg)
{
    struct rescue *r = arg;
    uint64_t start = corio_time_ns();
    while (!atomic_load(&r->flag) && corio_time_ns() - start < 5000000000ull)
        ;
    r->ok = atomic_load(&r->flag);
    r->waited_s = (double)(corio_time_ns() - start) / 1e9;
    return NULL;
}

static void *yield_behind_spinner(void *arg)
{
    struct rescue *r = arg;
    corio_future *done;
    corio_task *spinner;
    if (corio_future_create(&done) < 0 || corio_future_set_result(done, NULL) < 0 ||
        corio_spawn(&spinner, spin_until_flag, r) < 0)
        return (void *)-1;
    for (int i = 0; i < 1000; i++)   /* past the budget (128) more than once */
        if (corio_await(done, NULL) < 0)
            return (void *)-1;
    set_flag(r);
    corio_future_unref(done);
    int rc = corio_await(spinner, NULL);
    corio_task_unref(spinner);
    return (void *)(intptr_t)rc;
}

static void sched_monitor_rescues_budget_yielder_behind_long_step(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        struct rescue r = {0};
        corio_rt_options o = workers(2);
        void *rc = (void *)-1;
        assert_int_equal(corio_run(yield_behind_spinner, &r, &o, &rc), 0);
        assert_int_equal((intptr_t)rc, 0);
        if (!r.ok)
            fail_msg("the budget yielder behind a spinning task never ran (waited %.2f s)",
                     r.waited_s);
    }
}

/* Two tasks of one worker use up their budgets in turn: the first waits in
 * the yield slot while the second, from the LIFO slot, uses up its own;
 * the second must not take the first one's place (the first would be
 * lost, and the run would never end). */
static void *spend_budget_n(void *arg)
{
    corio_future *done = arg;
    for (int i = 0; i < 1000; i++)
        if (corio_await(done, NULL) < 0)
            return (void *)-1;
    return NULL;
}

static void *budget_yielders_in_turn(void *arg)
{
    (void)arg;
    corio_future *done;
    corio_task *second;
    if (corio_future_create(&done) < 0 || corio_future_set_result(done, NULL) < 0 ||
        corio_spawn(&second, spend_budget_n, done) < 0)
        return (void *)-1;
    void *mine = spend_budget_n(done), *its = (void *)-1;
    int rc = corio_await(second, &its);
    corio_task_unref(second);
    corio_future_unref(done);
    return (void *)(intptr_t)(rc < 0 || mine || its);
}

static void sched_budget_yielders_in_turn_all_finish(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        corio_rt_options o = workers(2);
        void *bad = (void *)-1;
        assert_int_equal(corio_run(budget_yielders_in_turn, NULL, &o, &bad), 0);
        assert_int_equal((intptr_t)bad, 0);
    }
}

/* White-box: a waker on another core may find the task still queued
 * while it already runs its next step, which read the condition before the
 * waker's store was visible and is about to park (store buffering). The
 * task plays both parts here: it shows the waker that stale state, then
 * parks with nothing else to wake it. The wake-up must not be lost: the
 * count the waker leaves makes the park run the task again. */
static void *stale_view_task(void *arg)
{
    atomic_int *resumed = arg;
    corio_task *t = corio_current_task();
    atomic_store(&t->sched, TS_SCHEDULED);
    corio__task_wake(t);
    atomic_store(&t->sched, TS_RUNNING);
    corio__task_park(t, PARK_FUTURE);
    atomic_store(resumed, 1);
    return NULL;
}

/* The other stale view: the task is running, the waker sets NOTIFIED, and
 * then a plain SCHEDULED/RUNNING store of the worker's (a yield and the
 * next step, late out of its store buffer) lands over the bit. */
static void *overwritten_notify_task(void *arg)
{
    atomic_int *resumed = arg;
    corio_task *t = corio_current_task();
    corio__task_wake(t);
    atomic_store(&t->sched, TS_RUNNING);
    corio__task_park(t, PARK_FUTURE);
    atomic_store(resumed, 1);
    return NULL;
}

static void *stale_view_main(void *arg)
{
    corio_fn body = (corio_fn)arg;
    for (int i = 0; i < 100; i++) {
        atomic_int resumed = 0;
        corio_task *t;
        if (corio_spawn(&t, body, &resumed) < 0)
            return V(1);
        /* Without the count the task sleeps until this cancels it. */
        int rc = corio_wait_for(t, 5 * CORIO_SEC, NULL);
        corio_task_unref(t);
        if (rc != 0 || !atomic_load(&resumed))
            return V(2);
    }
    return NULL;
}

static void sched_stale_queued_view_loses_no_wakeup(void **state)
{
    (void)state;
    corio_fn bodies[] = {stale_view_task, overwritten_notify_task};
    for (unsigned b = 0; b < 2; b++)
        for (unsigned w = 1; w <= 2; w++) {
            void *r = V(3);
            corio_rt_options o = workers(w);
            assert_int_equal(corio_run(stale_view_main, (void *)bodies[b], &o, &r), 0);
            assert_null(r);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sched_million_tasks),
        cmocka_unit_test(sched_stealing_runs_tasks_on_every_worker),
        cmocka_unit_test(sched_one_worker_runs_in_ready_order),
        cmocka_unit_test(sched_lone_yielder_lets_callbacks_and_timers_run),
        cmocka_unit_test(sched_direct_switches_keep_order_and_context),
        cmocka_unit_test(sched_budget_forces_a_yield),
        cmocka_unit_test(sched_idle_workers_use_no_cpu),
        cmocka_unit_test(sched_idle_after_hand_ins_uses_no_cpu),
        cmocka_unit_test(sched_task_tree_on_many_workers),
        cmocka_unit_test(sched_monitor_rescues_lifo_behind_long_step),
        cmocka_unit_test(sched_monitor_rescues_budget_yielder_behind_long_step),
        cmocka_unit_test(sched_budget_yielders_in_turn_all_finish),
        cmocka_unit_test(sched_mass_wakeup_runs_every_task),
        cmocka_unit_test(sched_mass_wakeup_runs_while_waker_is_busy),
        cmocka_unit_test(sched_pingpong_loses_no_wakeup),
        cmocka_unit_test(sched_stale_queued_view_loses_no_wakeup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
