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

/* Pauses between tries of a taken lock, at most: a waiter that keeps
 * reading the lock's line pulls it away from the holder in the middle of
 * its few stores, lengthening every critical section; exponential backoff
 * leaves the line with the holder. Measured on the queue (a producer and a
 * consumer on two workers meet on its lock at every call): the runs at
 * ~5M items/s, a quarter of them, went; caps of 4 to 256 were alike. */
#define CORIO__SPIN_MAX_DELAY 16

static inline void corio__spin_lock(struct corio__spin *s)
{
    unsigned delay = 1;
    /* Pairs with the release store in corio__spin_unlock(). */
    while (atomic_exchange_explicit(&s->locked, true, memory_order_acquire)) {
        do {
            for (unsigned i = 0; i < delay; i++)
                corio__cpu_relax();
            if (delay < CORIO__SPIN_MAX_DELAY)
                delay <<= 1;
        } while (atomic_load_explicit(&s->locked, memory_order_relaxed));
    }
}

static inline void corio__spin_unlock(struct corio__spin *s)
{
    atomic_store_explicit(&s->locked, false, memory_order_release);
}

#endif
