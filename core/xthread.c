/* core/xthread.c - what threads other than a runtime's workers may hand it:
 * tasks (run_coroutine_threadsafe) and callbacks (call_soon_threadsafe),
 * and the hook through which pool/ shuts the default executor down at the
 * end of corio_run().
 *
 * The gate. Work from outside goes to the global queue, where a worker
 * takes it; but once the main task has ended, the runner cancels what is
 * left and then stops the workers, and a task or callback queued after its
 * last look would never run (a thread blocked on its result would hang).
 * So an outside caller announces itself (ext_entering++), then checks
 * `closing`; the runner sets `closing`, then waits until nobody is past the
 * gate. Both sides are seq_cst (a Dekker pair): either the caller sees
 * `closing` and gives up with -ESHUTDOWN, or the runner sees the caller and
 * waits for it, so its task is registered (and cancelled with the rest) or
 * its callback queued before the runner looks. After the run, the gate
 * stays shut.
 */
#include <sched.h>

#include "internal.h"

static int gate_enter(struct corio_rt *rt)
{
    atomic_fetch_add_explicit(&rt->ext_entering, 1, memory_order_seq_cst);
    if (!atomic_load_explicit(&rt->closing, memory_order_seq_cst))
        return 0;
    atomic_fetch_sub_explicit(&rt->ext_entering, 1, memory_order_release);
    return -ESHUTDOWN;
}

static void gate_leave(struct corio_rt *rt)
{
    /* Pairs with the acquire load in corio__rt_close_gate(). */
    atomic_fetch_sub_explicit(&rt->ext_entering, 1, memory_order_release);
}

void corio__rt_close_gate(struct corio_rt *rt)
{
    atomic_store_explicit(&rt->closing, true, memory_order_seq_cst);
    /* A caller past the gate is a few hundred instructions from leaving. */
    while (atomic_load_explicit(&rt->ext_entering, memory_order_seq_cst))
        sched_yield();
}

/* The calling thread's worker when it belongs to @rt (then the ordinary,
 * local path is used), else NULL. */
static struct corio__worker *own_worker(struct corio_rt *rt)
{
    struct corio__worker *w = corio__worker_current();
    return w && w->rt == rt ? w : NULL;
}

int corio__rt_spawn_threadsafe(struct corio_rt *rt, corio_task **out, corio_fn fn, void *arg,
                               const corio_spawn_options *opts)
{
    if (!rt || !fn)
        return -EINVAL;
    int rc = gate_enter(rt);
    if (rc < 0)
        return rc;
    rc = corio__spawn_in(rt, own_worker(rt), out, fn, arg, opts);
    gate_leave(rt);
    return rc;
}

int corio__rt_call_soon_threadsafe(struct corio_rt *rt, corio_handle **out,
                                   corio_callback_fn fn, void *arg)
{
    if (!rt || !fn)
        return -EINVAL;
    int rc = gate_enter(rt);
    if (rc < 0)
        return rc;
    struct corio_handle *h;
    rc = corio__callback_new_on(rt, &h, out, fn, arg);
    if (rc == 0)
        corio__schedule(rt, &h->node, false);
    gate_leave(rt);
    return rc;
}

void corio__rt_set_shutdown_hook(struct corio_rt *rt, void (*fn)(struct corio_rt *rt, void *arg),
                                 void *arg)
{
    pthread_mutex_lock(&rt->handler_lock);
    rt->shutdown_hook = fn;
    rt->shutdown_hook_arg = arg;
    pthread_mutex_unlock(&rt->handler_lock);
}

void corio__rt_run_shutdown_hook(struct corio_rt *rt)
{
    pthread_mutex_lock(&rt->handler_lock);
    void (*fn)(struct corio_rt *, void *) = rt->shutdown_hook;
    void *arg = rt->shutdown_hook_arg;
    pthread_mutex_unlock(&rt->handler_lock);
    if (fn)
        fn(rt, arg);
}

void *corio__rt_default_executor(struct corio_rt *rt)
{
    return atomic_load_explicit(&rt->default_executor, memory_order_acquire);
}

bool corio__rt_install_default_executor(struct corio_rt *rt, void *ex)
{
    void *none = NULL;
    /* Pairs with the acquire load in corio__rt_default_executor(). */
    return atomic_compare_exchange_strong_explicit(&rt->default_executor, &none, ex,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire);
}
