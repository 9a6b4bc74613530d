/* core/dump.c - the task dump (DESIGN.md "Introspection"): every task with
 * its name, state, what it is parked on, and a backtrace unwound from its
 * saved context, without resuming any task (tokio's dump re-polls its tasks
 * and can deadlock; this one only reads).
 *
 * The list comes from the registry (each entry referenced, so no task is
 * freed under us). A parked task's context is its saved stack pointer
 * (core/fiber_<arch>.S): the switch frame there holds the frame pointer and
 * the return address into the task, and the frame-pointer chain continues
 * up the task's own stack. The task may be resumed on another worker while
 * we read, so every load is bounded to the task's stack and the chain must
 * climb strictly; a moved task gives a short or stale trace, never a fault.
 * Those reads race with the task by design: they are kept out of the
 * sanitizers' view (ASan poisons other frames' redzones, TSan would report
 * the intended race).
 */
#include <execinfo.h>
#include <stdlib.h>

#include "internal.h"

#define MAX_FRAMES 16

#if defined(__x86_64__)
#define SWITCH_FP_OFF 48    /* rbp in the switch frame */
#define SWITCH_PC_OFF 56    /* the return address */
#elif defined(__aarch64__)
#define SWITCH_FP_OFF 0x90  /* x29 */
#define SWITCH_PC_OFF 0x98  /* x30 */
#endif

__attribute__((no_sanitize_address, no_sanitize_thread, noinline))
static uintptr_t load_word(uintptr_t addr)
{
    return *(volatile const uintptr_t *)addr;
}

/* Return addresses of parked @t into @pcs (at most @max). */
__attribute__((no_sanitize_address, no_sanitize_thread))
static int unwind(const struct corio_task *t, void **pcs, int max)
{
#ifdef SWITCH_PC_OFF
    /* A stack of its own mapping may be unmapped by an exit meanwhile; the
     * arena's stay mapped until the runtime is destroyed. */
    if (!t->stack.lo || t->stack.map)
        return 0;
    uintptr_t lo = (uintptr_t)t->stack.lo, hi = lo + t->stack.size;
    uintptr_t sp = (uintptr_t)t->fiber.sp;
    if (sp < lo || sp + SWITCH_PC_OFF + sizeof(uintptr_t) > hi || (sp & 7))
        return 0;
    uintptr_t fp = load_word(sp + SWITCH_FP_OFF), pc = load_word(sp + SWITCH_PC_OFF);
    int n = 0;
    while (pc && n < max) {
        pcs[n++] = (void *)pc;
        if (fp <= sp || fp + 2 * sizeof(uintptr_t) > hi || (fp & 7))
            break;
        uintptr_t next = load_word(fp);
        pc = load_word(fp + sizeof(uintptr_t));
        sp = fp;
        fp = next;
    }
    return n;
#else
    (void)t, (void)pcs, (void)max;
    return 0;
#endif
}

static const char *state_name(uint32_t s)
{
    switch (s & TS_STATE_MASK) {
    case TS_IDLE: return "new";
    case TS_SCHEDULED: return "scheduled";
    case TS_RUNNING: return "running";
    case TS_PARKED: return "parked";
    case TS_DONE: return "done";
    default: return "?";
    }
}

static const char *park_name(uint8_t on)
{
    switch (on) {
    case PARK_SYNC: return "lock, event, condition, semaphore, barrier or queue";
    case PARK_SLEEP: return "sleep";
    case PARK_GATHER: return "gather";
    case PARK_WAIT: return "wait";
    case PARK_AS_COMPLETED: return "as_completed";
    case PARK_FUTURE: return "future";
    case PARK_TASK_GROUP: return "task group";
    case PARK_IO: return "I/O";
    case PARK_IO_MULTISHOT: return "I/O (multishot)";
    case PARK_IO_MULTISHOT_END: return "I/O (multishot end)";
    default: return NULL;
    }
}

static void dump_one(struct corio_task *t, FILE *out)
{
    uint32_t s = atomic_load_explicit(&t->sched, memory_order_acquire);
    const char *what = park_name(atomic_load_explicit(&t->awaiting, memory_order_relaxed));
    char name[CORIO__NAME_MAX];
    fprintf(out, "task %llu '%s': %s", (unsigned long long)t->id,
            corio__task_name_copy(t, name, sizeof name), state_name(s));
    if ((s & TS_STATE_MASK) == TS_PARKED && what)
        fprintf(out, " on %s", what);
    fprintf(out, ", cancelling %d\n", corio_task_cancelling(t));
    if ((s & TS_STATE_MASK) != TS_PARKED)
        return;
    void *pcs[MAX_FRAMES];
    int n = unwind(t, pcs, MAX_FRAMES);
    char **names = n ? backtrace_symbols(pcs, n) : NULL;
    for (int i = 0; i < n; i++) {
        if (names)
            fprintf(out, "    #%d %s\n", i, names[i]);
        else
            fprintf(out, "    #%d %p\n", i, pcs[i]);
    }
    free(names);
}

int corio_rt_dump_tasks(corio_rt *rt, FILE *out)
{
    if (!rt || !out)
        return -EINVAL;
    corio_task **list;
    int n = corio__registry_snapshot(rt, &list, NULL);
    if (n < 0)
        return n;
    fprintf(out, "corio: %d task(s)\n", n);
    for (int i = 0; i < n; i++)
        dump_one(list[i], out);
    fflush(out);
    corio_task_list_free(list, n);
    return n;
}
