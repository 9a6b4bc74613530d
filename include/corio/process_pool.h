/* corio/process_pool.h - the process-pool executor
 * (concurrent.futures.ProcessPoolExecutor): CPU-heavy work run in worker
 * processes, each a fresh copy of this program.
 *
 * Functions are named, not passed: a worker process is a new image of the
 * program (spawned from /proc/self/exe, never fork()ed from a process that
 * has threads), so it knows only what the program registered at load time.
 * Register each function once, at file scope:
 *
 *     static int square(const void *in, size_t in_len, void **out, size_t *out_len)
 *     { ... *out = malloc(n); *out_len = n; return 0; }
 *     CORIO_PROCESS_FUNCTION("square", square);
 *
 * The macro expands to two constructors: one with priority 101 that adds
 * {name, fn} to the library's table, and one of default priority that, in a
 * worker process only (an environment variable carries its socket), serves
 * requests and _exit()s, so a worker never reaches main(). Every prioritized
 * constructor of an executable runs before its unprioritized ones, so all
 * registrations are in the table before a worker serves, whether libcorio is
 * linked statically or shared. Register in the executable only:
 * constructor priorities order constructors within one ELF module, and the
 * loader runs a linked shared library's constructors before the
 * executable's, so a registration inside a shared library would start
 * serving before the executable's functions are in the table (their calls
 * would fail with -ENOENT in workers). Registrations in libraries loaded by
 * dlopen() are not seen by workers. Constructors of other libraries and
 * unprioritized constructors that come first still run in each worker.
 *
 * Arguments and results are byte buffers. A function gets the request's
 * bytes (@in, @in_len) and sets *@out to a malloc()ed result of *@out_len
 * bytes (or leaves *@out NULL for an empty result); the library frees it.
 * A negative return fails the task with that code; *@out, if set, is then
 * the error message (its bytes, no NUL needed). A function runs in the
 * worker's only thread and may block; it must not return to the caller's
 * loop by longjmp or exit the process (that is reported as a dead worker).
 *
 * A submitted task's result is a concurrent future (corio/executor.h) whose
 * value is a struct corio_bytes *, owned by the future (valid until its last
 * unref). The pool's own thread runs a private one-worker corio runtime
 * that talks to the workers through the io backend (one task per worker
 * process), so no thread blocks per call and submit works from a plain
 * thread or a task alike. A future turns running when its request is
 * written to a worker, which may be a little before the worker starts it
 * (queued work goes out in small batches when every worker is busy); from
 * then on it cannot be cancelled. Its done callbacks run on the pool's
 * thread: they must not block long, and must not destroy the pool.
 *
 * Errors of a task (the future's error):
 *   the function's own negative code and message;
 *   -ENOENT  the function name is not registered in the worker;
 *   -EMSGSIZE the result exceeds CORIO_PROCESS_MAX_PAYLOAD;
 *   -EPIPE   "broken pool": the worker process died while it had the task
 *            (message: "process pool worker 1234 died: Killed (SIGKILL)",
 *            or "... exited with status 3"), or its initializer failed.
 *            A dead worker is reaped and replaced; the other tasks go on.
 *            A failing initializer breaks the whole pool (as Python's
 *            BrokenProcessPool): queued tasks fail, submit returns -EPIPE.
 *   -ECANCELED the future was cancelled before a worker took it.
 */
#ifndef CORIO_PROCESS_POOL_H
#define CORIO_PROCESS_POOL_H

#include <stddef.h>

#include "common.h"
#include "executor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest request or result, in bytes: 64 MiB (the wire's limit, so a
 * corrupt length can never make either side allocate without bound). */
#define CORIO_PROCESS_MAX_PAYLOAD ((size_t)64 << 20)
/* The longest function name, in bytes. */
#define CORIO_PROCESS_MAX_NAME 255

/* A result: @len bytes in @data (followed by a NUL not counted in @len, so
 * text can be used as a string). */
struct corio_bytes {
    size_t len;
    unsigned char data[];
};

/* A function run in a worker process (see the top of this file). */
typedef int (*corio_process_fn)(const void *in, size_t in_len, void **out, size_t *out_len);

/* One registration; the macro makes a static one. */
typedef struct corio_process_function {
    const char *name;
    corio_process_fn fn;
    struct corio_process_function *next;   /* the library's list */
} corio_process_function;

/* corio_process_function_register - add @f to the table (the macro's
 * constructor calls it). Only registrations made before main() exist in the
 * workers. Returns 0, -EINVAL (NULL, no fn, name empty or too long), -EEXIST
 * (the name is taken). Call from: a constructor. */
CORIO_API int corio_process_function_register(corio_process_function *f);

/* corio__process_child_maybe_serve - the macro's second constructor: in a
 * worker process, serve and _exit(); elsewhere note that the hook exists
 * and return. Not for direct use. */
CORIO_API void corio__process_child_maybe_serve(void);

#define CORIO__PP_CAT2(a, b) a##b
#define CORIO__PP_CAT(a, b) CORIO__PP_CAT2(a, b)

/* CORIO_PROCESS_FUNCTION - register @fn under the string @name, at file
 * scope (once per name in the program). */
#define CORIO_PROCESS_FUNCTION(name, fn)                                              \
    static corio_process_function CORIO__PP_CAT(corio__ppf_##fn##_, __LINE__) = {      \
        (name), (fn), NULL};                                                          \
    __attribute__((constructor(101))) static void CORIO__PP_CAT(corio__ppr_##fn##_,    \
                                                                __LINE__)(void)       \
    {                                                                                 \
        corio_process_function_register(&CORIO__PP_CAT(corio__ppf_##fn##_, __LINE__)); \
    }                                                                                 \
    __attribute__((constructor)) static void CORIO__PP_CAT(corio__pps_##fn##_,         \
                                                           __LINE__)(void)            \
    {                                                                                 \
        corio__process_child_maybe_serve();                                           \
    }                                                                                 \
    typedef int CORIO__PP_CAT(corio__ppt_##fn##_, __LINE__)

typedef struct corio_process_pool corio_process_pool;

/* Options; zero fields mean defaults, NULL means all defaults. */
typedef struct corio_process_pool_options {
    unsigned max_workers;        /* 0: the online CPUs; at most 1024 */
    const char *initializer;     /* a registered function run once in each new
                                    worker with initarg (its result is dropped);
                                    NULL: none */
    const void *initarg;         /* copied at create */
    size_t initarg_len;
    unsigned max_tasks_per_child;/* a worker is replaced after this many tasks;
                                    0: never */
} corio_process_pool_options;

/* corio_process_pool_create - a pool with no worker processes yet
 * (ProcessPoolExecutor()): a worker starts when a task finds no idle one,
 * up to max_workers. Starts the pool's thread. Returns 0 and *@out,
 * -EINVAL (@out NULL, max_workers > 1024, initarg NULL with a length, or
 * initarg_len over CORIO_PROCESS_MAX_PAYLOAD), -ENOENT (initializer not
 * registered), -ENOEXEC (the program registers no function, so a worker
 * could not serve), -ENOMEM, or the error of starting the thread or runtime.
 * Call from: any thread. */
CORIO_API int corio_process_pool_create(corio_process_pool **out,
                                        const corio_process_pool_options *opts);

/* corio_process_pool_submit - run the function registered as @name on
 * @in[0..@in_len) (copied) in a worker (Executor.submit). *@out (one
 * reference) gets a struct corio_bytes * or the task's error (top of file).
 * Returns 0, -EINVAL (NULL @pp, @name or @out; NULL @in with a length),
 * -ENOENT (@name not registered), -EMSGSIZE (@in_len over
 * CORIO_PROCESS_MAX_PAYLOAD), -ESHUTDOWN (after shutdown), -EPIPE (the pool
 * is broken), -ENOMEM. Call from: any thread or a task. It does not wait
 * for the work: a small request goes straight into an idle worker's empty
 * socket with one non-blocking send. Only a worker that stopped reading
 * (a stopped process) can make that send wait, 10 ms at a time, for at most
 * 1 s, after which the worker is killed and replaced (its future fails with
 * -EPIPE, as for any worker that dies). */
CORIO_API int corio_process_pool_submit(corio_process_pool *pp, const char *name,
                                        const void *in, size_t in_len, corio_cfuture **out);

/* corio_process_pool_shutdown - refuse new work (Executor.shutdown); with
 * @cancel_futures, cancel the queued tasks that no worker took; queued tasks
 * that are not cancelled still run. With @wait, return when every task has
 * ended and every worker process has exited and been reaped (from a task it
 * blocks that task's worker: call it from a plain thread where it matters).
 * Returns 0, -EINVAL (NULL), -EDEADLK (@wait from a done callback running
 * on the pool's own thread). Idempotent. Call from: any thread. */
CORIO_API int corio_process_pool_shutdown(corio_process_pool *pp, bool wait, bool cancel_futures);

/* corio_process_pool_destroy - shutdown(wait = true) and free @pp; the
 * memory may be reused after it returns. Futures already returned stay
 * valid. Returns 0, -EINVAL (NULL), -EDEADLK (from the pool's own thread).
 * Call from: any thread. */
CORIO_API int corio_process_pool_destroy(corio_process_pool *pp);

/* corio_process_pool_workers - worker processes alive now (a snapshot; 0 for
 * NULL). corio_process_pool_pids - up to @n of their pids into @pids;
 * returns how many. Call from: any thread. */
CORIO_API unsigned corio_process_pool_workers(corio_process_pool *pp);
CORIO_API unsigned corio_process_pool_pids(corio_process_pool *pp, int *pids, unsigned n);

#ifdef __cplusplus
}
#endif

#endif
