/* core/error.c - messages for the negative errnos corio returns.
 *
 * One X-macro table for the codes whose meaning in corio is more specific
 * than libc's text; everything else falls back to strerror_r's message.
 */
#include <string.h>

#include "corio/common.h"

#define CORIO_ERRORS(X)                                                        \
    X(EINVAL, "invalid argument or misuse")                                    \
    X(EPERM, "must be called from a task (or a worker) of a running runtime")  \
    X(ENOMEM, "out of memory (or the runtime's stack budget is spent)")        \
    X(ECANCELED, "cancelled")                                                  \
    X(EAGAIN, "not done yet, or would block")                                  \
    X(ETIMEDOUT, "timed out")                                                  \
    X(EBUSY, "the runtime is running, or the caller is one of its workers")    \
    X(ESHUTDOWN, "shut down: the runtime or executor accepts no more work")   \
    X(ENOENT, "nothing left")

const char *corio_strerror(int err)
{
    switch (-err) {
#define CASE(code, text) case code: return text;
        CORIO_ERRORS(CASE)
#undef CASE
    case 0:
        return "success";
    default:
        break;
    }
    static __thread char buf[128];
    const char *s = strerror_r(err < 0 ? -err : err, buf, sizeof buf);
    return s ? s : "unknown error";
}
