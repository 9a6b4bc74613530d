/* core/stack.c - task stacks (see core/stack.h for the layout and ownership).
 *
 * Four tiers, fastest first:
 *   - a worker's cache: an array used as a LIFO, touched only by its owner,
 *     so the stack freed last (pages resident, lines warm) is reused first;
 *   - the arena's warm list, under the arena lock: stacks a busy cache spilled
 *     past CORIO_STACK_CACHE_MAX with their memory, given back at a trim;
 *   - the arena's free list, under the arena lock: stacks given back after
 *     MADV_DONTNEED, so a stack in it costs no memory;
 *   - fresh slots carved from the arena's last region (a new region is mapped
 *     when it is used up), also under the lock.
 * A cache that runs dry takes a batch (REFILL_BATCH) from the second or third
 * tier at once, so the lock is taken once per batch, not once per task. A
 * cache keeps what its worker frees up to CORIO_STACK_CACHE_MAX (past it the
 * coldest half moves to the warm list, memory and all) and is trimmed to
 * CORIO_STACK_CACHE_HIGH when the worker parks with nothing to wait for (or
 * once a second), warm list included: giving memory back is a TLB shootdown
 * per call (~5 us with a second thread running), so it is done in sorted,
 * coalesced batches and off the busy path.
 *
 * Guards. The mode is chosen once, at arena init, by trying
 * MADV_GUARD_INSTALL on a scratch mapping: Linux 6.13+ accepts it, and a
 * guard installed that way neither splits the VMA nor disappears under
 * MADV_DONTNEED. Older kernels answer EINVAL and we fall back to a canary
 * word at stack_lo. Each slot's guard page is installed when the slot is
 * carved, never again: nothing that happens to a stack afterwards (reuse,
 * DONTNEED of its usable range) removes it. Only usable ranges are ever
 * DONTNEED'd: that keeps guards in place in every mode, including mprotect.
 *
 * Failures never abort: a refused mapping is -ENOMEM from alloc. free cannot
 * fail, so when it cannot find room for a stack (an allocation for the cache
 * or the free list failed) it gives the stack's memory back with
 * MADV_DONTNEED and forgets the slot: address space is lost, memory is not,
 * and the region is still unmapped whole by arena_fini.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* pipe2 */
#endif
#include "stack.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102  /* include/uapi/asm-generic/mman-common.h, Linux 6.13 */
#endif

/* How many stacks a dry cache takes from the arena at once: one lock round
 * trip per 32 tasks started, and a batch of fresh slots is 32 guard
 * installs, about 30 us of syscalls. */
#define REFILL_BATCH 32
#define TRIM_BATCH 128   /* warm stacks given back per lock round trip (3 KiB of stack) */

/* vm.max_map_count headroom kept for everything that is not a task stack:
 * libraries, thread stacks with their guards (the elastic pool alone may
 * start 512 threads), io_uring rings and buffer rings. */
#define MAP_SLACK 2048

static size_t stride(const struct corio__stack_arena *a)
{
    return a->page + a->slot_size;
}

static size_t region_len(const struct corio__stack_arena *a)
{
    return (size_t)CORIO_STACK_REGION_SLOTS * stride(a);
}

static size_t round_up(size_t n, size_t page)
{
    return (n + page - 1) & ~(page - 1);
}

static void *map_anon(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Whether the kernel really refuses access to the guard at @p: a write()
 * from it must fail with EFAULT. Emulators (qemu-user) accept unknown advice
 * and do nothing, which would leave every stack unguarded and canary-less. */
static bool guard_is_real(const void *p)
{
    int fds[2];
    bool real;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return true;    /* cannot tell: trust the kernel's answer */
    real = write(fds[1], p, 1) < 0 && errno == EFAULT;
    close(fds[0]);
    close(fds[1]);
    return real;
}

static enum corio__guard_mode probe_guard_mode(size_t page)
{
#ifdef CORIO_STACK_MPROTECT_GUARDS
    (void)page;
    return CORIO_GUARD_MPROTECT;
#else
    enum corio__guard_mode mode = CORIO_GUARD_CANARY;
    void *p = map_anon(2 * page);

    /* Any refusal (EINVAL on older kernels, EPERM under a seccomp filter
     * that does not know the advice) means the canary; so does a failed
     * scratch mapping, the mode that needs nothing from the kernel. */
    if (p) {
        if (madvise(p, page, MADV_GUARD_INSTALL) == 0 && guard_is_real(p))
            mode = CORIO_GUARD_MADVISE;
        munmap(p, 2 * page);
    }
    return mode;
#endif
}

/* Makes the page at @guard a guard in mode @mode. Canary mode has no guard
 * page to mark: the canary is written at alloc. */
static int install_guard(enum corio__guard_mode mode, void *guard, size_t page)
{
    switch (mode) {
    case CORIO_GUARD_MADVISE:
        return madvise(guard, page, MADV_GUARD_INSTALL) == 0 ? 0 : -ENOMEM;
    case CORIO_GUARD_MPROTECT:
        return mprotect(guard, page, PROT_NONE) == 0 ? 0 : -ENOMEM;
    case CORIO_GUARD_CANARY:
        break;
    }
    return 0;
}

static void write_canary(const struct corio__stack_arena *a, struct corio__stack *s)
{
    if (a->guard == CORIO_GUARD_CANARY) {
        uint64_t c = CORIO_STACK_CANARY;
        memcpy(s->lo, &c, sizeof c);
    }
}

int corio__stack_arena_init(struct corio__stack_arena *a, size_t default_size)
{
    long page = sysconf(_SC_PAGESIZE);

    memset(a, 0, sizeof *a);
    if (page <= 0)
        page = 4096;
    if (default_size == 0)
        default_size = CORIO_STACK_DEFAULT_SIZE;
    if (default_size < CORIO_STACK_MIN_SIZE || default_size > CORIO_STACK_MAX_SIZE)
        return -EINVAL;
    a->page = (size_t)page;
    a->slot_size = round_up(default_size, a->page);
    a->guard = probe_guard_mode(a->page);
    if (pthread_mutex_init(&a->lock, NULL) != 0)
        return -ENOMEM;
    /* No region yet: the first carve maps one. */
    a->next_slot = CORIO_STACK_REGION_SLOTS;
    return 0;
}

void corio__stack_arena_fini(struct corio__stack_arena *a)
{
    for (size_t i = 0; i < a->nregions; i++)
        munmap(a->regions[i], region_len(a));
    free(a->regions);
    free(a->free);
    free(a->warm);
    a->warm = NULL;
    a->nwarm = a->cap_warm = 0;
    pthread_mutex_destroy(&a->lock);
    a->regions = NULL;
    a->nregions = a->cap_regions = 0;
    a->free = NULL;
    a->nfree = a->cap_free = 0;
}

void corio__stack_cache_init(struct corio__stack_cache *c)
{
    /* The array is allocated by the first alloc or free that needs it:
     * init cannot fail, and a worker that never runs a task costs nothing. */
    c->slots = NULL;
    c->n = 0;
    c->cap = 0;
}

/* Room for one more entry, growing by doubling up to CORIO_STACK_CACHE_MAX
 * + 1 (a push may take the cache one past the cap; the spill right after
 * brings it back). False when the cache cannot grow. */
static bool cache_ready(struct corio__stack_cache *c)
{
    if (c->n < c->cap)
        return true;
    size_t cap = c->cap ? 2 * c->cap : CORIO_STACK_CACHE_HIGH + 1;
    if (cap > CORIO_STACK_CACHE_MAX + 1)
        cap = CORIO_STACK_CACHE_MAX + 1;
    if (cap <= c->cap)
        return false;
    struct corio__stack *grown = realloc(c->slots, cap * sizeof *grown);
    if (!grown)
        return false;
    c->slots = grown;
    c->cap = cap;
    return true;
}

static void release_memory(struct corio__stack *s)
{
    madvise(s->lo, s->size, MADV_DONTNEED);
}

/* Appends @n stacks to the arena's free list (@warm: the warm list; else
 * they must be DONTNEED'd already). Returns how many it took (all, or 0
 * when growing failed). */
static size_t arena_take(struct corio__stack_arena *a, const struct corio__stack *s, size_t n,
                         bool warm)
{
    if (!n)
        return 0;
    struct corio__stack **list = warm ? &a->warm : &a->free;
    size_t *len = warm ? &a->nwarm : &a->nfree, *cap = warm ? &a->cap_warm : &a->cap_free;
    pthread_mutex_lock(&a->lock);
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : CORIO_STACK_CACHE_HIGH;
        while (c < *len + n)
            c *= 2;
        struct corio__stack *grown = realloc(*list, c * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&a->lock);
            return 0;
        }
        *list = grown;
        *cap = c;
    }
    memcpy(*list + *len, s, n * sizeof *s);
    *len += n;
    pthread_mutex_unlock(&a->lock);
    return n;
}

static int by_address(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t)((const struct corio__stack *)x)->lo;
    uintptr_t b = (uintptr_t)((const struct corio__stack *)y)->lo;
    return (a > b) - (a < b);
}

/* DONTNEED @n stacks with as few calls as possible: slots carved one after
 * the other sit one guard page apart, and a run of them is given back in one
 * call (one TLB flush instead of one per stack: 1000 separate calls cost ~7x
 * more here). A MADV_GUARD_INSTALL guard survives DONTNEED and a canary-mode
 * guard page holds nothing, so the pages between them may be included;
 * mprotect guards are separate mappings and keep the one-by-one path. */
static void release_batch(const struct corio__stack_arena *a, struct corio__stack *s, size_t n)
{
    if (!n)
        return;
    if (a->guard == CORIO_GUARD_MPROTECT) {
        for (size_t i = 0; i < n; i++)
            release_memory(&s[i]);
        return;
    }
    qsort(s, n, sizeof *s, by_address);
    size_t i = 0;
    while (i < n) {
        char *lo = s[i].lo, *hi = lo + s[i].size;
        size_t j = i + 1;
        while (j < n && s[j].size == a->slot_size && s[j - 1].size == a->slot_size &&
               (char *)s[j].lo == hi + a->page) {
            hi = (char *)s[j].lo + s[j].size;
            j++;
        }
        madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
        i = j;
    }
}

/* Moves the @n coldest (oldest) cached stacks to the arena: given back
 * (@release) to its free list, or as they are to its warm list. */
static void cache_spill(struct corio__stack_cache *c, struct corio__stack_arena *a, size_t n,
                        bool release)
{
    if (!release && arena_take(a, c->slots, n, true) != n)
        release = true;
    if (release) {
        release_batch(a, c->slots, n);
        /* On failure the stacks are already without memory: forget them
         * (see the essay) rather than keep the cache above its mark. */
        arena_take(a, c->slots, n, false);
    }
    memmove(c->slots, c->slots + n, (c->n - n) * sizeof *c->slots);
    c->n -= n;
}

void corio__stack_cache_fini(struct corio__stack_cache *c, struct corio__stack_arena *a)
{
    if (c->n)
        cache_spill(c, a, c->n, true);
    free(c->slots);
    corio__stack_cache_init(c);
}

/* Maps a new region; called with the arena lock held. */
static int arena_grow(struct corio__stack_arena *a)
{
    if (a->nregions == a->cap_regions) {
        size_t cap = a->cap_regions ? 2 * a->cap_regions : 8;
        void **grown = realloc(a->regions, cap * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        a->regions = grown;
        a->cap_regions = cap;
    }
    void *r = map_anon(region_len(a));
    if (!r)
        return -ENOMEM;
    a->regions[a->nregions++] = r;
    a->next_slot = 0;
    return 0;
}

/* Fills the (empty) cache with up to REFILL_BATCH stacks: returned ones
 * first, else fresh slots of the last region. */
/* Moves up to REFILL_BATCH stacks from the end of @list into the empty
 * cache @c; false when the list is empty. Under the arena lock. */
static bool take_listed(struct corio__stack_cache *c, const struct corio__stack *list, size_t *len)
{
    size_t n = *len < REFILL_BATCH ? *len : REFILL_BATCH;
    if (!n)
        return false;
    *len -= n;
    memcpy(c->slots, list + *len, n * sizeof *c->slots);
    c->n = n;
    return true;
}

#ifndef PIDFD_SELF
#define PIDFD_SELF -10000   /* include/uapi/linux/pidfd.h, Linux 6.14 */
#endif

/* One process_madvise(@advice) on our own pages @iov[0..@n): the bytes
 * done, or -1. A kernel that refuses the call or the advice (older ones
 * refuse PIDFD_SELF or the advice) sets *@unsupported, so that callers stop
 * trying and fall back. */
static long madvise_self(const struct iovec *iov, size_t n, int advice, atomic_bool *unsupported)
{
#ifdef SYS_process_madvise
    if (atomic_load_explicit(unsupported, memory_order_relaxed))
        return -1;
    long done = syscall(SYS_process_madvise, PIDFD_SELF, iov, n, advice, 0);
    if (done < 0 && (errno == EINVAL || errno == EBADF || errno == ENOSYS || errno == EPERM))
        atomic_store_explicit(unsupported, true, memory_order_relaxed);
    return done;
#else
    (void)iov, (void)n, (void)advice;
    atomic_store_explicit(unsupported, true, memory_order_relaxed);
    return -1;
#endif
}

/* Guards for the @n consecutive slots from @first with one
 * process_madvise() call instead of n madvise() calls (measured on the
 * development VM: 0.22-0.41 us per stack instead of 0.47-0.58 us; W4 makes
 * 100,000 stacks). Returns how many leading slots got their guard; the
 * caller guards the rest one by one (older kernels refuse PIDFD_SELF or
 * this advice: then 0). */
static size_t guard_batch(struct corio__stack_arena *a, char *first, size_t n)
{
    static atomic_bool unsupported;
    if (a->guard != CORIO_GUARD_MADVISE || n < 2)
        return 0;
    struct iovec iov[REFILL_BATCH];
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = first + i * stride(a);
        iov[i].iov_len = a->page;
    }
    long done = madvise_self(iov, n, MADV_GUARD_INSTALL, &unsupported);
    return done < 0 ? 0 : (size_t)done / a->page;   /* iovecs are applied in order */
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  /* include/uapi/asm-generic/mman-common.h, Linux 5.14 */
#endif

/* Faults in the top page of each of the @n stacks (where a task's first
 * frames go) with one process_madvise() call, instead of one page fault
 * each when the tasks start: measured on the development VM, 1.55 us per
 * page instead of 1.9 (perf W4 starts 100,000 tasks on fresh stacks). A
 * refused call (older kernels) leaves the pages to fault as before. */
static void populate_tops(struct corio__stack_arena *a, const struct corio__stack *s, size_t n)
{
    static atomic_bool unsupported;
    if (n < 2)
        return;
    struct iovec iov[REFILL_BATCH];
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = (char *)s[i].lo + s[i].size - a->page;
        iov[i].iov_len = a->page;
    }
    madvise_self(iov, n, MADV_POPULATE_WRITE, &unsupported);
}

static int cache_refill(struct corio__stack_cache *c, struct corio__stack_arena *a)
{
    char *base;
    size_t first, n;

    pthread_mutex_lock(&a->lock);
    /* Warm stacks first (their pages are resident), then given-back ones. */
    if (take_listed(c, a->warm, &a->nwarm)) {
        pthread_mutex_unlock(&a->lock);
        return 0;
    }
    if (take_listed(c, a->free, &a->nfree)) {
        pthread_mutex_unlock(&a->lock);
        populate_tops(a, c->slots, c->n);
        return 0;
    }
    if (a->next_slot == CORIO_STACK_REGION_SLOTS) {
        int err = arena_grow(a);
        if (err) {
            pthread_mutex_unlock(&a->lock);
            return err;
        }
    }
    base = a->regions[a->nregions - 1];
    first = a->next_slot;
    n = CORIO_STACK_REGION_SLOTS - first;
    if (n > REFILL_BATCH)
        n = REFILL_BATCH;
    a->next_slot += n;
    pthread_mutex_unlock(&a->lock);

    /* The carved slots are ours alone now: guard them outside the lock. A
     * slot whose guard the kernel refuses is never handed out. */
    size_t batched = guard_batch(a, base + first * stride(a), n);
    for (size_t i = 0; i < n; i++) {
        char *slot = base + (first + i) * stride(a);
        if (i >= batched && install_guard(a->guard, slot, a->page) != 0)
            continue;
        c->slots[c->n].lo = slot + a->page;
        c->slots[c->n].size = a->slot_size;
        c->slots[c->n].map = NULL;
        c->slots[c->n].map_len = 0;
        c->n++;
    }
    populate_tops(a, c->slots, c->n);
    return c->n ? 0 : -ENOMEM;
}

/* A stack of a non-default size: its own mapping, guard page at the bottom. */
static int alloc_own(struct corio__stack_arena *a, size_t size, struct corio__stack *out)
{
    size_t len = a->page + size;
    char *map = map_anon(len);

    if (!map)
        return -ENOMEM;
    if (install_guard(a->guard, map, a->page) != 0) {
        munmap(map, len);
        return -ENOMEM;
    }
    out->lo = map + a->page;
    out->size = size;
    out->map = map;
    out->map_len = len;
    write_canary(a, out);
    return 0;
}

int corio__stack_alloc(struct corio__stack_cache *c, struct corio__stack_arena *a,
                       size_t size, struct corio__stack *out)
{
    if (size != 0) {
        if (size < CORIO_STACK_MIN_SIZE || size > CORIO_STACK_MAX_SIZE)
            return -EINVAL;
        size = round_up(size, a->page);
        if (size != a->slot_size)
            return alloc_own(a, size, out);
    }
    if (c->n == 0) {
        if (!cache_ready(c))
            return -ENOMEM;
        int err = cache_refill(c, a);
        if (err)
            return err;
    }
    *out = c->slots[--c->n];
    write_canary(a, out);
    return 0;
}

void corio__stack_free(struct corio__stack_cache *c, struct corio__stack_arena *a,
                       struct corio__stack *s)
{
    if (s->map) {
        munmap(s->map, s->map_len);
        return;
    }
    if (!cache_ready(c)) {
        if (!c->n) {
            release_memory(s);
            arena_take(a, s, 1, false);
            return;
        }
        /* Full (an earlier spill could not hand stacks over), or no memory
         * to grow: make room. */
        cache_spill(c, a, (c->n + 1) / 2, true);
    }
    c->slots[c->n++] = *s;
    if (c->n > CORIO_STACK_CACHE_MAX)
        cache_spill(c, a, c->n / 2, false);
}

size_t corio__stack_cache_trim(struct corio__stack_cache *c, struct corio__stack_arena *a,
                               size_t max)
{
    size_t done = 0;
    if (c->n > CORIO_STACK_CACHE_HIGH) {
        done = c->n - CORIO_STACK_CACHE_HIGH < max ? c->n - CORIO_STACK_CACHE_HIGH : max;
        cache_spill(c, a, done, true);
    }
    if (done >= max)
        return done;
    /* Take the oldest warm stacks out, give them back outside the lock (other
     * workers go on), then list them as free. */
    struct corio__stack batch[TRIM_BATCH];
    while (done < max) {
        pthread_mutex_lock(&a->lock);
        size_t n = a->nwarm < TRIM_BATCH ? a->nwarm : TRIM_BATCH;
        if (n > max - done)
            n = max - done;
        if (!n) {
            pthread_mutex_unlock(&a->lock);
            break;
        }
        a->nwarm -= n;
        memcpy(batch, a->warm + a->nwarm, n * sizeof *batch);
        pthread_mutex_unlock(&a->lock);
        release_batch(a, batch, n);
        arena_take(a, batch, n, false);
        done += n;
    }
    return done;
}

bool corio__stack_canary_ok(const struct corio__stack_arena *a, const struct corio__stack *s)
{
    uint64_t c;

    if (a->guard != CORIO_GUARD_CANARY)
        return true;
    memcpy(&c, s->lo, sizeof c);
    return c == CORIO_STACK_CANARY;
}

bool corio__stack_in_guard(const struct corio__stack *s, const void *addr, size_t page)
{
    uintptr_t lo = (uintptr_t)s->lo, p = (uintptr_t)addr;

    return p < lo && p >= lo - page;
}

/* Reads a small decimal file; -1 when it cannot. */
static long long read_number(const char *path)
{
    char buf[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return strtoll(buf, NULL, 10);
}

/* Mappings the process holds now: lines of /proc/self/maps; 0 when unknown. */
static size_t count_maps(void)
{
    char buf[16384];
    size_t lines = 0;
    ssize_t n;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    close(fd);
    return lines;
}

static size_t sat_add(size_t x, size_t y)
{
    return x > SIZE_MAX - y ? SIZE_MAX : x + y;
}

int corio__stack_check_map_count(const struct corio__stack_arena *a, size_t stacks,
                                 char *msg, size_t msglen)
{
    long long limit = read_number("/proc/sys/vm/max_map_count");
    size_t need, usable;
    const char *alt;

    if (msg && msglen)
        msg[0] = '\0';
    /* No procfs (a sandbox): nothing to check against, let the kernel decide. */
    if (limit <= 0)
        return 0;
    if (a->guard == CORIO_GUARD_MPROTECT) {
        /* mprotect splits each slot into two VMAs: guard and stack. */
        need = stacks > SIZE_MAX / 2 ? SIZE_MAX : 2 * stacks;
        alt = "build without CORIO_STACK_MPROTECT_GUARDS (one mapping per "
              "512 stacks)";
    } else {
        need = stacks / CORIO_STACK_REGION_SLOTS + 1;
        alt = "run fewer tasks at once";
    }
    need = sat_add(sat_add(need, count_maps()), MAP_SLACK);
    /* 90%: the kernel counts mappings that come and go under us (thread
     * stacks, malloc arenas), so stop short of the exact limit. */
    usable = (size_t)(limit / 10 * 9);
    if (need <= usable)
        return 0;
    if (msg && msglen) {
        /* The sysctl is an int: past INT_MAX no setting helps. */
        unsigned long long want = need > (size_t)INT_MAX / 10 * 9 ? 0
                                  : (unsigned long long)need / 9 * 10 + 10;
        if (want)
            snprintf(msg, msglen,
                     "corio: vm.max_map_count=%lld cannot hold %zu guarded stacks "
                     "(about %zu mappings needed); raise it with "
                     "sysctl -w vm.max_map_count=%llu or %s",
                     limit, stacks, need, want, alt);
        else
            snprintf(msg, msglen,
                     "corio: vm.max_map_count=%lld cannot hold %zu guarded stacks "
                     "(about %zu mappings needed, more than the sysctl can be "
                     "raised to); %s",
                     limit, stacks, need, alt);
    }
    return -ENOMEM;
}
