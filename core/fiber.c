/* core/fiber.c - the C side of the context switch: sanitizer bookkeeping
 * around the assembly primitives of core/fiber_<arch>.S.
 *
 * In a plain build corio__fiber_switch() is one tail call into
 * corio__fiber_asm_switch(); everything else here runs once per fiber.
 *
 * ASan keeps one notion of "the current stack" per thread and must be told
 * about every change, or it reports false stack-buffer overflows and loses
 * its fake stacks (stack-use-after-return detection):
 *   - before a switch, __sanitizer_start_switch_fiber(&from->asan_fake, ...)
 *     with the bounds of @to's stack (NULL slot in switch_final: that stack
 *     is dead, its fake frames may go);
 *   - after the switch returns in the resumed context,
 *     __sanitizer_finish_switch_fiber(from->asan_fake, ...);
 *   - a brand-new context has no such "after": start_trampoline() calls
 *     finish_switch_fiber(NULL, ...) first thing, then the user's entry. The
 *     user's entry travels on the new stack itself: corio__fiber_init() stores
 *     it in the 16 bytes at the aligned top and hands asm_make the address
 *     below; the assembly start code passes that address as the second
 *     argument (see core/fiber_x86_64.S), so no field is added to the fiber.
 * A reused stack still carries the shadow poison of the frames its last
 * fiber never returned from; corio__fiber_init() clears it.
 *
 * TSan has explicit fiber objects: a worker's own context uses the thread's
 * fiber, each task context creates one (destroyed in corio__fiber_destroy(),
 * never while it runs), and __tsan_switch_to_fiber() goes right before the
 * assembly switch. Flags 0 makes each switch a synchronisation point, which is
 * what a handoff between threads through the scheduler really is.
 *
 * Call from: the thread that runs @from (switch, switch_final); any thread
 * that owns @f while it is not running (init, destroy).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* pthread_getattr_np */
#endif
#include "fiber.h"

#include <pthread.h>
#include <string.h>

/* CORIO_FIBER_ASAN / CORIO_FIBER_TSAN: fiber.h. */

#ifdef CORIO_FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CORIO_FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Bytes at the top of a new stack that hold the user's entry in ASan builds:
 * 16 keeps the asm frame below it aligned. */
#define ENTRY_SLOT 16

#ifdef CORIO_FIBER_ASAN
/* First code to run on a new ASan-built fiber. @top is where
 * corio__fiber_init() left the user's entry (passed by the assembly start code). */
static void start_trampoline(void *value, void *top)
{
    corio__fiber_entry entry;

    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
    memcpy(&entry, top, sizeof entry);
    entry(value);
    __builtin_unreachable();
}
#endif

void corio__fiber_init_thread(struct corio__fiber *f)
{
    memset(f, 0, sizeof *f);
#ifdef CORIO_FIBER_ASAN
    /* ASan needs the bounds to switch back to this context. */
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &lo, &size) != 0) {
            lo = NULL;
            size = 0;
        }
        pthread_attr_destroy(&attr);
    }
    f->stack_lo = lo;
    f->stack_size = size;
#endif
#ifdef CORIO_FIBER_TSAN
    f->tsan = __tsan_get_current_fiber();
#endif
}

void corio__fiber_init(struct corio__fiber *f, void *stack_lo, size_t size,
                       corio__fiber_entry entry)
{
    char *top = (char *)stack_lo + size;

    memset(f, 0, sizeof *f);
#ifdef CORIO_FIBER_ASAN
    f->stack_lo = stack_lo;
    f->stack_size = size;
    __asan_unpoison_memory_region(stack_lo, size);
    top = (char *)((uintptr_t)top & ~(uintptr_t)15) - ENTRY_SLOT;
    memcpy(top, &entry, sizeof entry);
    /* The assembly start code calls its entry with (value, top); casting through
     * void (*)(void) states that the two-argument call is deliberate. */
    f->sp = corio__fiber_asm_make(top, (corio__fiber_entry)(void (*)(void))start_trampoline);
#else
    f->sp = corio__fiber_asm_make(top, entry);
#endif
#ifdef CORIO_FIBER_TSAN
    f->tsan = __tsan_create_fiber(0);
    f->owns_tsan = 1;
#endif
}

void *corio__fiber_switch(struct corio__fiber *from, struct corio__fiber *to, void *value)
{
#if defined(CORIO_FIBER_ASAN) || defined(CORIO_FIBER_TSAN)
    void *ret;

#ifdef CORIO_FIBER_ASAN
    __sanitizer_start_switch_fiber(&from->asan_fake, to->stack_lo, to->stack_size);
#endif
#ifdef CORIO_FIBER_TSAN
    __tsan_switch_to_fiber(to->tsan, 0);
#endif
    ret = corio__fiber_asm_switch(&from->sp, to->sp, value);
#ifdef CORIO_FIBER_ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
    return ret;
#else
    return corio__fiber_asm_switch(&from->sp, to->sp, value);
#endif
}

void corio__fiber_switch_final(struct corio__fiber *from, struct corio__fiber *to, void *value)
{
#ifdef CORIO_FIBER_ASAN
    /* NULL slot: this stack will not be resumed, drop its fake stack. */
    __sanitizer_start_switch_fiber(NULL, to->stack_lo, to->stack_size);
#endif
#ifdef CORIO_FIBER_TSAN
    __tsan_switch_to_fiber(to->tsan, 0);
#endif
    corio__fiber_asm_switch(&from->sp, to->sp, value);
    __builtin_unreachable();
}

void corio__fiber_destroy(struct corio__fiber *f)
{
#ifdef CORIO_FIBER_TSAN
    if (f->owns_tsan && f->tsan)
        __tsan_destroy_fiber(f->tsan);
    f->tsan = NULL;
    f->owns_tsan = 0;
#else
    (void)f;
#endif
}
