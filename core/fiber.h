/* core/fiber.h - execution contexts and the switch between them.
 *
 * A fiber is a saved stack pointer: corio__fiber_switch() pushes the
 * callee-saved registers (and the FP control words) of the running context
 * on its own stack, stores the stack pointer in @from->sp, loads @to->sp and
 * pops @to's registers (core/fiber_x86_64.S, core/fiber_aarch64.S). Nothing
 * else is saved: the switch is an ordinary function call for the compiler.
 *
 * Every worker thread's scheduler context is a fiber made with
 * corio__fiber_init_thread(); a task's context is made on its stack with
 * corio__fiber_init(). The first switch into a new fiber calls entry(value);
 * entry must never return: its last act is corio__fiber_switch_final().
 *
 * The C wrappers in core/fiber.c tell ASan (__sanitizer_start/finish_switch_fiber)
 * and TSan (__tsan_switch_to_fiber) about each switch, so sanitizer builds
 * follow the stack changes; in other builds they compile to the bare switch.
 *
 * Call from: the thread that runs @from; @to must not be running anywhere.
 */
#ifndef CORIO_CORE_FIBER_H
#define CORIO_CORE_FIBER_H

#include <stddef.h>
#include <stdint.h>

#if defined(__SANITIZE_ADDRESS__)
#define CORIO_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_FIBER_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define CORIO_FIBER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORIO_FIBER_TSAN 1
#endif
#endif

/* A release build keeps only the stack pointer: the rest is what the
 * sanitizers' fiber annotations need, and every task carries one of these
 * (W1 and W7 pay for each byte of a task: 1M tasks are 1M page-sized
 * pieces of memory touched). */
struct corio__fiber {
    void *sp;             /* saved stack pointer while switched out */
#ifdef CORIO_FIBER_ASAN
    void *stack_lo;       /* lowest usable byte (just above any guard) */
    size_t stack_size;    /* usable bytes from stack_lo up */
    void *asan_fake;      /* ASan fake-stack save slot */
#endif
#ifdef CORIO_FIBER_TSAN
    void *tsan;           /* TSan fiber handle */
    int owns_tsan;        /* 1 when corio__fiber_destroy() must free ->tsan */
#endif
};

typedef void (*corio__fiber_entry)(void *value);

/* Describe the calling thread's own stack (a worker's scheduler context). */
void corio__fiber_init_thread(struct corio__fiber *f);

/* Prepare @f to start entry(value) on [stack_lo, stack_lo + size) at its
 * first switch. Does not touch the stack below its top 256 bytes. */
void corio__fiber_init(struct corio__fiber *f, void *stack_lo, size_t size,
                       corio__fiber_entry entry);

/* Switch from the running context (saved into @from) to @to, passing @value;
 * returns the value passed by the switch that resumes @from. */
void *corio__fiber_switch(struct corio__fiber *from, struct corio__fiber *to, void *value);

/* Last switch out of a fiber whose stack is about to be reused or freed
 * (tells ASan to drop its fake stack). Never returns. */
__attribute__((noreturn))
void corio__fiber_switch_final(struct corio__fiber *from, struct corio__fiber *to, void *value);

/* Release what corio__fiber_init() acquired (the TSan fiber). Not the stack. */
void corio__fiber_destroy(struct corio__fiber *f);

/* The assembly primitives (exposed for the switch benchmark and tests). */
void *corio__fiber_asm_switch(void **save_sp, void *to_sp, void *value);
void *corio__fiber_asm_make(void *stack_top, corio__fiber_entry entry);

#endif
