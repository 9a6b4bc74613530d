/* pool/thread_pool_map.c - Executor.map: submit every call, then collect
 * the results in submission order within one deadline. Waiting goes
 * through corio_cfuture_result(), so a task awaits and a plain thread
 * blocks; on the first failure in order, what has not started is cancelled,
 * as Python's map does once its iterator raises.
 */
#include <stdlib.h>

#include "pool.h"

int corio_thread_pool_map(corio_thread_pool *p, corio_fn fn, void *const *args, size_t n,
                          int64_t timeout_ns, void **results)
{
    if (!p || !fn || (n && (!args || !results)) || timeout_ns < 0)
        return -EINVAL;
    corio_cfuture **fs = calloc(n ? n : 1, sizeof *fs);
    if (!fs)
        return -ENOMEM;
    int rc = 0;
    size_t submitted = 0;
    for (; submitted < n && rc == 0; submitted++)
        rc = corio_thread_pool_submit(p, fn, args[submitted], &fs[submitted]);
    if (rc < 0)
        submitted--;
    uint64_t deadline = corio__deadline_of(timeout_ns);
    for (size_t i = 0; i < submitted && rc == 0; i++) {
        int64_t left = CORIO_WAIT_FOREVER;
        if (deadline != UINT64_MAX) {
            uint64_t now = corio__mono_ns();
            left = now >= deadline ? 0 : (int64_t)(deadline - now);
        }
        rc = corio_cfuture_result(fs[i], left, &results[i]);
    }
    /* Python's map cancels what has not started once its iterator fails. */
    for (size_t i = 0; i < submitted; i++) {
        if (rc < 0)
            corio_cfuture_cancel(fs[i]);
        corio_cfuture_unref(fs[i]);
    }
    free(fs);
    return rc;
}
