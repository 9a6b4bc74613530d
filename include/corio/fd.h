/* corio/fd.h - watching file descriptors with callbacks (asyncio's
 * loop.add_reader / remove_reader / add_writer / remove_writer).
 *
 * A registered callback runs each time its descriptor is readable (a
 * reader) or writable (a writer), until it is removed. It runs like a
 * corio_call_soon() callback: on a worker's own stack, never inside a task,
 * and it must not await. Readiness is level-triggered, as in asyncio: a
 * reader whose callback leaves data unread runs again. One reader and one
 * writer per descriptor and runtime; adding again replaces the callback.
 *
 * Each registration is carried by one internal task of the runtime, named
 * "corio-reader-<fd>" / "corio-writer-<fd>", that awaits corio_wait_fd() and
 * then the callback's run. These tasks are visible to corio_all_tasks(), and
 * the runtime's shutdown cancels them like any other task, which removes the
 * registration: a runtime may end with readers still registered.
 *
 * A descriptor that becomes invalid (closed without removing its watcher:
 * POLLNVAL or -EBADF) ends its registration silently. Close a watched
 * descriptor only after removing its watchers, as asyncio requires.
 */
#ifndef CORIO_FD_H
#define CORIO_FD_H

#include "common.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* corio_add_reader - run @fn(@arg) each time @fd is readable
 * (loop.add_reader); corio_add_writer - each time it is writable
 * (loop.add_writer). A second add for the same @fd and direction replaces
 * the callback. Returns 0, -EINVAL (@fd < 0, @fn NULL), -EPERM (no running
 * runtime on this thread), -ENOMEM. Call from: a task or a callback. */
CORIO_API int corio_add_reader(int fd, corio_callback_fn fn, void *arg);
CORIO_API int corio_add_writer(int fd, corio_callback_fn fn, void *arg);

/* corio_remove_reader / corio_remove_writer - stop watching @fd
 * (loop.remove_reader / remove_writer): a callback that has not started will
 * not run (one already running finishes). Returns 1 when a watcher was
 * removed, 0 when there was none, -EINVAL (@fd < 0), -EPERM (no running
 * runtime on this thread). Call from: a task or a callback. */
CORIO_API int corio_remove_reader(int fd);
CORIO_API int corio_remove_writer(int fd);

#ifdef __cplusplus
}
#endif

#endif
