/* corio/signal.h - Unix signals as callbacks on the runtime
 * (loop.add_signal_handler / loop.remove_signal_handler), and asyncio.run's
 * handling of SIGINT.
 *
 * A handler is a plain callback: when the signal arrives, @fn(@arg) is
 * scheduled on a worker of the runtime that registered it, like
 * corio_call_soon(), so it runs on a worker's own stack, never in signal
 * context, and may use the whole API except awaiting. Signals that arrive
 * in a burst coalesce: the callback runs at least once after the last of
 * them, not once per signal. The signal may land on any thread of the
 * process (a worker, the caller of corio_run(), a thread of your own):
 * corio installs a real sigaction() handler that only records the signal
 * and wakes the runtime.
 *
 * One owner per signal: a signal belongs to one runtime at a time; another
 * runtime asking for it gets -EBUSY until the first removes its handler or
 * its run ends. Handlers last until they are removed or replaced, or until
 * the run of their runtime ends (asyncio's loop.close() removes them); each
 * removal puts back the disposition the signal had before corio took it.
 * A callback already scheduled when its handler is removed or replaced
 * still runs once, with the old argument (as an asyncio Handle would).
 *
 * SIGINT during corio_run() / corio_rt_run() (asyncio.run, Python 3.11+):
 * if SIGINT has the default disposition when the run starts, then until the
 * run ends the first SIGINT cancels the main task (so the run returns
 * -ECANCELED, after the usual shutdown, unless main catches the
 * cancellation), and a second SIGINT restores the default disposition and
 * re-raises SIGINT, so the process dies "killed by SIGINT" at once (asyncio
 * raises KeyboardInterrupt). The previous disposition is restored when the
 * run ends. A SIGINT handler added with corio_add_signal_handler() takes
 * precedence while it is registered. When SIGINT is ignored or handled when
 * the run starts (or another running runtime has it), the run leaves it
 * alone.
 *
 * Refused signals: SIGKILL and SIGSTOP (the kernel does not let them be
 * caught), the synchronous faults SIGSEGV, SIGBUS, SIGILL and SIGFPE (a
 * handler that returns re-runs the faulting instruction; corio reports its
 * own stack overflows through SIGSEGV), and the real-time signals glibc
 * keeps for itself (those below SIGRTMIN).
 *
 * fork(): a child that creates its own runtime gets its own wake-up
 * descriptor; forking while a runtime of the parent runs is not supported
 * (as with any multi-threaded fork).
 */
#ifndef CORIO_SIGNAL_H
#define CORIO_SIGNAL_H

#include "common.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* corio_add_signal_handler - run @fn(@arg) on a worker of @rt each time
 * signal @signo arrives (loop.add_signal_handler), replacing the handler
 * @rt had for @signo. Returns 0, -EINVAL (@rt or @fn NULL, @signo out of
 * range or refused: see above), -EPERM (not called from a task or callback
 * of @rt, or @rt is shutting down), -EBUSY (another runtime owns @signo),
 * -ENOMEM, or -errno from eventfd(2) / sigaction(2).
 * Call from: a task or a callback of @rt. */
CORIO_API int corio_add_signal_handler(corio_rt *rt, int signo, corio_callback_fn fn,
                                       void *arg);

/* corio_remove_signal_handler - remove @rt's handler for @signo
 * (loop.remove_signal_handler) and restore the disposition @signo had
 * before. Returns 1 when a handler was removed, 0 when @rt had none for
 * @signo (another runtime's handler is left alone), -EINVAL (@rt NULL, or
 * @signo out of range or refused). Call from: any thread. */
CORIO_API int corio_remove_signal_handler(corio_rt *rt, int signo);

#ifdef __cplusplus
}
#endif

#endif
