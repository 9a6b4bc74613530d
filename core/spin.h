/* core/spin.h - a test-and-test-and-set spinlock for critical sections of a
 * few dozen instructions (a future's waiter list, a registry shard).
 *
 * C11 atomics rather than ck_spinlock so ThreadSanitizer sees the
 * acquire/release pairs; holders never block, allocate or switch fibers
 * while holding one.
 */
#ifndef CORIO_CORE_SPIN_H
#define CORIO_CORE_SPIN_H

#include <stdatomic.h>
#include <stdbool.h>

struct corio__spin {
    atomic_bool locked;
};

static inline void corio__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline void corio__spin_init(struct corio__spin *s)
{
    atomic_init(&s->locked, false);
}

static inline void corio__spin_lock(struct corio__spin *s)
{
    for (;;) {
        /* Pairs with the release store in corio__spin_unlock(). */
        if (!atomic_exchange_explicit(&s->locked, true, memory_order_acquire))
            return;
        while (atomic_load_explicit(&s->locked, memory_order_relaxed))
            corio__cpu_relax();
    }
}

static inline void corio__spin_unlock(struct corio__spin *s)
{
    atomic_store_explicit(&s->locked, false, memory_order_release);
}

#endif
