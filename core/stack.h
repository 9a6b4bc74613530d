/* core/stack.h - task stacks: carved from large MAP_NORESERVE regions, cached
 * per worker, guarded.
 *
 * Layout of one default-size slot (addresses grow up):
 *     [guard page][usable stack ... ][ next slot's guard ] ...
 * A region holds CORIO_STACK_REGION_SLOTS slots and is one mapping (one VMA).
 * Guard: MADV_GUARD_INSTALL (Linux 6.13+) marks the guard page without
 * splitting the VMA, so a million guarded stacks stay far below
 * vm.max_map_count; when the kernel refuses it (EINVAL), a 64-bit canary at
 * stack_lo is written instead and checked by corio__stack_canary_ok() at every
 * switch out of the task. mprotect() guards (two VMAs per stack) are used only
 * when CORIO_STACK_MPROTECT_GUARDS is defined (debug builds).
 *
 * Ownership: the arena belongs to the runtime and outlives every stack; a
 * cache belongs to one worker (no locking); a stack may be freed into a
 * different worker's cache than the one it came from. Memory is only paid for
 * pages a task touched; a cache gives stacks back to the arena, after
 * MADV_DONTNEED, above CORIO_STACK_CACHE_HIGH when its worker parks
 * (corio__stack_cache_trim) and above CORIO_STACK_CACHE_MAX at once.
 *
 * Stack sizes other than the arena's default get their own mapping (own guard)
 * and are unmapped when freed.
 */
#ifndef CORIO_CORE_STACK_H
#define CORIO_CORE_STACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CORIO_STACK_DEFAULT_SIZE (64u * 1024)   /* DESIGN.md: 64 KiB virtual */
#define CORIO_STACK_MIN_SIZE     (16u * 1024)   /* room for libc calls + signal frames */
#define CORIO_STACK_MAX_SIZE     (1024u * 1024 * 1024)
#define CORIO_STACK_REGION_SLOTS 512            /* one VMA per 512 stacks: ~34 MiB */
#define CORIO_STACK_CACHE_HIGH   256            /* per-worker cached stacks kept when idle */
/* Cap while busy: giving memory back costs a TLB shootdown per call (~5 us
 * with a second thread running, perf W4), so a busy worker keeps what it
 * frees, up to this, and trims to CORIO_STACK_CACHE_HIGH when it parks. */
#define CORIO_STACK_CACHE_MAX    4096
#define CORIO_STACK_CANARY       UINT64_C(0xC0210C0FFEE57ACC)

enum corio__guard_mode {
    CORIO_GUARD_MADVISE,    /* MADV_GUARD_INSTALL */
    CORIO_GUARD_CANARY,     /* canary word at stack_lo */
    CORIO_GUARD_MPROTECT,   /* debug only */
};

struct corio__stack {
    void *lo;          /* lowest usable byte (above the guard) */
    size_t size;       /* usable bytes */
    void *map;         /* own mapping for non-default sizes, else NULL */
    size_t map_len;
};

struct corio__stack_arena {
    pthread_mutex_t lock;
    size_t slot_size;             /* default usable size, page multiple */
    enum corio__guard_mode guard;
    void **regions; size_t nregions, cap_regions;
    size_t next_slot;             /* next never-used slot in the last region */
    struct corio__stack *free; size_t nfree, cap_free;   /* returned by caches, no memory */
    struct corio__stack *warm; size_t nwarm, cap_warm;   /* spilled by busy caches, resident */
    size_t page;
};

struct corio__stack_cache {
    struct corio__stack *slots; size_t n, cap;
};

/* corio__stack_arena_init - @default_size 0 means CORIO_STACK_DEFAULT_SIZE;
 * rounded up to pages. Probes the guard mode once. Returns 0 or -EINVAL/-ENOMEM. */
int corio__stack_arena_init(struct corio__stack_arena *a, size_t default_size);
/* Unmaps every region: all stacks must have been freed (or be abandoned). */
void corio__stack_arena_fini(struct corio__stack_arena *a);

void corio__stack_cache_init(struct corio__stack_cache *c);
/* Gives every cached stack back to @a. */
void corio__stack_cache_fini(struct corio__stack_cache *c, struct corio__stack_arena *a);

/* corio__stack_alloc - a stack of at least @size usable bytes (0: default).
 * Returns 0, -EINVAL (size out of [CORIO_STACK_MIN_SIZE, CORIO_STACK_MAX_SIZE])
 * or -ENOMEM (the kernel refused the mapping). The canary, in canary mode, is
 * written. Call from: the owner of @c. */
int corio__stack_alloc(struct corio__stack_cache *c, struct corio__stack_arena *a,
                       size_t size, struct corio__stack *out);
/* corio__stack_cache_trim - give back up to @max stacks: the coldest above
 * CORIO_STACK_CACHE_HIGH first, then warm ones the arena holds, in sorted,
 * coalesced batches. Returns how many. Call from: the owner of @c, when it
 * is about to sleep (a bounded @max keeps it from sleeping late). */
size_t corio__stack_cache_trim(struct corio__stack_cache *c, struct corio__stack_arena *a,
                               size_t max);
/* Call from: the owner of @c. */
void corio__stack_free(struct corio__stack_cache *c, struct corio__stack_arena *a,
                       struct corio__stack *s);

/* true unless @a is in canary mode and the canary of @s was overwritten. */
bool corio__stack_canary_ok(const struct corio__stack_arena *a, const struct corio__stack *s);

/* true when @addr lies in the guard page just below @s (for the SIGSEGV handler). */
bool corio__stack_in_guard(const struct corio__stack *s, const void *addr, size_t page);

/* corio__stack_check_map_count - fail early, with a message in @msg, when
 * vm.max_map_count cannot hold @stacks stacks in the arena's guard mode.
 * Returns 0 or -ENOMEM. */
int corio__stack_check_map_count(const struct corio__stack_arena *a, size_t stacks,
                                 char *msg, size_t msglen);

#endif
