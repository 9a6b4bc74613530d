/* core/park.c - putting an idle worker to sleep and waking it.
 *
 * This is the seam the per-worker I/O backend replaces: a parked worker will
 * sleep inside its ring's wait (so its own I/O also wakes it) and be woken
 * through an eventfd. Until then, a futex on unpark_word:
 *   unpark: store 1 (release), FUTEX_WAKE;
 *   park:   exchange 0; if it was 1 the wake-up is consumed, else FUTEX_WAIT
 *           while the word is still 0 (the kernel compares atomically, so a
 *           store + wake between our exchange and the wait is not lost).
 * An idle runtime therefore uses no CPU: no timeout, no polling.
 */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static void futex_wait(_Atomic uint32_t *word, uint32_t expect)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expect, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void corio__worker_park(struct corio__worker *w)
{
    /* Pairs with the release store in corio__worker_unpark(). */
    while (atomic_exchange_explicit(&w->unpark_word, 0, memory_order_acquire) == 0)
        futex_wait(&w->unpark_word, 0);
}

void corio__worker_unpark(struct corio__worker *w)
{
    atomic_store_explicit(&w->unpark_word, 1, memory_order_release);
    futex_wake(&w->unpark_word);
}
