/* core/timer.c - sleep, call_later/call_at, timeout scopes and wait_for on
 * each worker's timer wheel (core/wheel.c).
 *
 * A wheel is its worker's alone: timers are inserted, removed and fired on
 * that thread only. A task that armed a timer and then moved to another
 * worker (stolen, or woken elsewhere) goes back to the timer's worker
 * (corio__task_migrate) before it removes it, so a sleeping task's timer can
 * live on its own stack. Call_later handles are heap objects cancelled from
 * any thread by a mark (corio_handle_cancel); the wheel drops them when due.
 *
 * A fire callback runs on the worker's scheduler stack (during its poll) and
 * only wakes or cancels a task, or queues a handle. Sleep uses the same
 * 0 -> 1 -> 2 completion protocol as I/O operations (io/backend.h), so a
 * spuriously woken task never leaves while its timer's fire still touches it.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "corio/time.h"
#include "internal.h"

int corio__timers_init(struct corio__worker *w)
{
    w->wheel = malloc(sizeof *w->wheel);
    if (!w->wheel)
        return -ENOMEM;
    corio__wheel_init(w->wheel, corio_time_ns());
    return 0;
}

static void handle_fire(struct corio__timer *tm);

/* At destroy: only call_later handles can be left (tasks have ended). */
void corio__timers_fini(struct corio__worker *w)
{
    if (!w->wheel)
        return;
    /* Fire everything: cancelled or not, a due handle is dropped by
     * handle_fire's caller below instead of being queued. */
    struct corio__wheel *wh = w->wheel;
    w->wheel = NULL;
    if (corio__wheel_count(wh))
        corio__wheel_advance(wh, UINT64_MAX - 1);
    free(wh);
}

/* Timers fire on whole milliseconds, the wheel's resolution (tokio rounds
 * the same way): a due timer waits for the end of its millisecond, so the
 * wheel always takes whole slots and never rescans the current one (a slot
 * holds ~1000 timers in W4). Never early; at most 1 ms late for that. */
static uint64_t ms_ceil(uint64_t t)
{
    if (t > UINT64_MAX - CORIO__WHEEL_TICK_NS)
        return t;
    return (t + CORIO__WHEEL_TICK_NS - 1) / CORIO__WHEEL_TICK_NS * CORIO__WHEEL_TICK_NS;
}

uint64_t corio__timers_next(struct corio__worker *w)
{
    return ms_ceil(corio__wheel_next_deadline(w->wheel));
}

void corio__timers_run(struct corio__worker *w)
{
    if (!corio__wheel_count(w->wheel))
        return;
    uint64_t now = corio_time_ns();
    if (corio__timers_next(w) > now)
        return;
    size_t n = corio__wheel_advance(w->wheel, now - now % CORIO__WHEEL_TICK_NS);
    corio__stat_add(w->m_timers_fired, n);
}

/* ---- sleep ---- */

struct sleeper {
    struct corio__timer timer;
    struct corio_task *task;
    _Atomic uint32_t fired;      /* 0 armed, 1 firing, 2 fired */
};

static void sleeper_fire(struct corio__timer *tm)
{
    struct sleeper *s = corio__container_of(tm, struct sleeper, timer);
    struct corio_task *t = s->task;
    atomic_store_explicit(&s->fired, 1, memory_order_release);
    corio__task_wake(t);
    /* Pairs with the acquire load in corio_sleep_until(). */
    atomic_store_explicit(&s->fired, 2, memory_order_release);
}

int corio_sleep_until(uint64_t when_ns)
{
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    if (corio__task_take_cancel(t))
        return -ECANCELED;
    struct corio__worker *w = corio__worker_current();
    struct corio__worker *owner = w;
    struct sleeper s;
    corio__timer_init(&s.timer, sleeper_fire);
    s.task = t;
    atomic_init(&s.fired, 0);
    corio__wheel_insert(owner->wheel, &s.timer, when_ns);
    uint32_t d;
    while ((d = atomic_load_explicit(&s.fired, memory_order_acquire)) != 2) {
        if (d == 1) {
            sched_yield();   /* the firing worker is between its two stores */
            continue;
        }
        if (corio__task_take_cancel(t)) {
            corio__task_migrate(t, owner);
            if (corio__wheel_remove(owner->wheel, &s.timer))
                return -ECANCELED;
            /* It fired while we moved: the sleep is over; the cancellation
             * is delivered at the next await. */
            atomic_store_explicit(&t->must_cancel, true, memory_order_release);
            continue;
        }
        corio__task_park(t, PARK_SLEEP);
    }
    return 0;
}

int corio_sleep(int64_t delay_ns)
{
    if (delay_ns < 0)
        return -EINVAL;
    if (delay_ns == 0)
        return corio_yield();
    return corio_sleep_until(corio_time_ns() + (uint64_t)delay_ns);
}

/* ---- call_later / call_at ---- */

/* The wheel held one reference: queue the handle (its own run skips it if
 * cancelled meanwhile), or drop it when cancelled or the runtime is going. */
static void handle_fire(struct corio__timer *tm)
{
    struct corio_handle *h = corio__container_of(tm, struct corio_handle, timer);
    struct corio__worker *w = corio__worker_current();
    if (!w || w->rt != h->rt ||
        atomic_load_explicit(&h->state, memory_order_acquire) != HANDLE_PENDING) {
        corio__handle_drop(h);
        return;
    }
    corio__schedule(h->rt, &h->node, false);
}

int corio_call_at(corio_handle **out, uint64_t when_ns, corio_callback_fn fn, void *arg)
{
    struct corio_handle *h;
    int rc = corio__callback_new(&h, out, fn, arg);
    if (rc < 0)
        return rc;
    h->when = when_ns ? when_ns : 1;
    corio__timer_init(&h->timer, handle_fire);
    corio__wheel_insert(corio__worker_current()->wheel, &h->timer, when_ns);
    return 0;
}

int corio_call_later(corio_handle **out, int64_t delay_ns, corio_callback_fn fn, void *arg)
{
    if (delay_ns < 0)
        return -EINVAL;
    return corio_call_at(out, corio_time_ns() + (uint64_t)delay_ns, fn, arg);
}

uint64_t corio_handle_when(const corio_handle *h)
{
    return h ? h->when : 0;
}

/* ---- timeout scopes ---- */

enum { TM_CREATED = 0, TM_ENTERED, TM_EXPIRING, TM_EXPIRED, TM_EXITED };

struct tscope {
    struct corio__timer timer;
    struct corio_task *task;
    struct corio__worker *owner;  /* whose wheel holds the timer while armed */
    uint64_t when;
    _Atomic int state;
    int cancelling;               /* task's cancelling() at enter */
    uint32_t magic;
};

#define TSCOPE_MAGIC 0x74696d65u  /* "time": catches exit on a scope never entered */

_Static_assert(sizeof(struct tscope) <= sizeof(corio_timeout), "corio_timeout is too small");
_Static_assert(_Alignof(struct tscope) <= _Alignof(corio_timeout), "corio_timeout alignment");

static struct tscope *scope_of(corio_timeout *tm) { return (struct tscope *)(void *)tm; }

static void scope_fire(struct corio__timer *tm)
{
    struct tscope *s = corio__container_of(tm, struct tscope, timer);
    int expect = TM_ENTERED;
    if (atomic_compare_exchange_strong_explicit(&s->state, &expect, TM_EXPIRING,
                                                memory_order_acq_rel, memory_order_relaxed))
        corio__task_cancel_request(s->task, NULL);
}

/* Put the scope's timer at s->when on the current worker (the owner). */
static void scope_arm(struct tscope *s, struct corio__worker *w)
{
    s->owner = w;
    if (s->when != CORIO_NO_DEADLINE)
        corio__wheel_insert(w->wheel, &s->timer, s->when);
}

/* Take the timer out, on its owner (moving the task there if needed). */
static void scope_disarm(struct tscope *s)
{
    if (s->when == CORIO_NO_DEADLINE)
        return;   /* never inserted */
    corio__task_migrate(s->task, s->owner);
    corio__wheel_remove(s->owner->wheel, &s->timer);
}

int corio_timeout_enter_at(corio_timeout *tm, uint64_t when_ns)
{
    if (!tm)
        return -EINVAL;
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    struct tscope *s = scope_of(tm);
    memset(s, 0, sizeof *s);
    corio__timer_init(&s->timer, scope_fire);
    s->task = t;
    s->when = when_ns;
    s->cancelling = corio_task_cancelling(t);
    s->magic = TSCOPE_MAGIC;
    atomic_init(&s->state, TM_ENTERED);
    scope_arm(s, corio__worker_current());
    return 0;
}

int corio_timeout_enter(corio_timeout *tm, int64_t delay_ns)
{
    if (delay_ns < 0)
        return -EINVAL;
    return corio_timeout_enter_at(tm, corio_time_ns() + (uint64_t)delay_ns);
}

int corio_timeout_reschedule(corio_timeout *tm, uint64_t when_ns)
{
    if (!tm)
        return -EINVAL;
    struct tscope *s = scope_of(tm);
    if (s->magic != TSCOPE_MAGIC || s->task != corio_current_task())
        return -EINVAL;
    scope_disarm(s);
    if (atomic_load_explicit(&s->state, memory_order_acquire) != TM_ENTERED)
        return -EINVAL;
    s->when = when_ns;
    scope_arm(s, corio__worker_current());
    return 0;
}

uint64_t corio_timeout_when(const corio_timeout *tm)
{
    return tm ? ((const struct tscope *)(const void *)tm)->when : 0;
}

bool corio_timeout_expired(const corio_timeout *tm)
{
    if (!tm)
        return false;
    int st = atomic_load_explicit(&((const struct tscope *)(const void *)tm)->state,
                                  memory_order_acquire);
    return st == TM_EXPIRING || st == TM_EXPIRED;
}

int corio_timeout_exit(corio_timeout *tm, int rc)
{
    if (!tm)
        return -EINVAL;
    struct tscope *s = scope_of(tm);
    if (s->magic != TSCOPE_MAGIC || s->task != corio_current_task() ||
        atomic_load_explicit(&s->state, memory_order_acquire) >= TM_EXPIRED)
        return -EINVAL;
    /* On the owner, the fire and this exit cannot overlap. */
    scope_disarm(s);
    s->magic = 0;
    if (atomic_load_explicit(&s->state, memory_order_acquire) == TM_EXPIRING) {
        atomic_store_explicit(&s->state, TM_EXPIRED, memory_order_release);
        /* asyncio: uncancel() <= the count at enter, and CancelledError. */
        if (corio_task_uncancel(s->task) <= s->cancelling && rc == -ECANCELED)
            return -ETIMEDOUT;
        return rc;
    }
    atomic_store_explicit(&s->state, TM_EXITED, memory_order_release);
    return rc;
}

/* ---- wait_for ---- */

int corio_future_wait_for(corio_future *f, int64_t timeout_ns, void **value)
{
    if (!f || timeout_ns < 0)
        return -EINVAL;
    if (!corio_current_task())
        return -EPERM;
    if (corio_future_done(f))
        return corio_future_await(f, value);
    if (timeout_ns == 0) {
        /* asyncio: no time at all: cancel it, wait for it, time out. */
        corio_future_cancel(f, NULL);
        int rc = corio_future_await(f, value);
        return rc == -ECANCELED ? -ETIMEDOUT : rc;
    }
    corio_timeout tm;
    corio_timeout_enter(&tm, timeout_ns);
    int rc = corio_future_await(f, value);
    return corio_timeout_exit(&tm, rc);
}
