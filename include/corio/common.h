/* corio/common.h - what every corio header shares: the export macro, the
 * version, and the error-string function.
 *
 * Errors: every corio function returns 0 (or a count, or a pointer) on success
 * and a negative errno on failure; none sets or reads the global errno.
 *   -EINVAL     misuse (NULL argument, bad size, state that forbids the call)
 *   -EPERM      a call that needs a task made outside one (await outside a task)
 *   -ENOMEM     out of memory (task, stack, or the runtime's stack budget)
 *   -ECANCELED  the awaited thing, or the awaiting task, was cancelled
 *   -EAGAIN     not done yet (asyncio's InvalidStateError for result())
 *   -ETIMEDOUT  a timeout expired
 *   -ESHUTDOWN  the runtime, executor or queue was shut down and takes no more work
 * A failed task carries its own negative code and an optional message.
 */
#ifndef CORIO_COMMON_H
#define CORIO_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(CORIO_BUILDING) && defined(__GNUC__)
#define CORIO_API __attribute__((visibility("default")))
#else
#define CORIO_API
#endif

#define CORIO_VERSION_MAJOR 0
#define CORIO_VERSION_MINOR 1
#define CORIO_VERSION_PATCH 0
#define CORIO_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* corio_strerror - a message for a negative errno returned by corio.
 * Returns a static string (never NULL); unknown codes get a generic text.
 * Call from: anywhere. */
CORIO_API const char *corio_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
