/* pool/process_wire.h - the framing between a process pool and its workers.
 *
 * One AF_UNIX stream socket per worker carries, strictly alternating, one
 * request from the pool and one reply from the worker:
 *
 *   request: hdr{kind = INIT | CALL, code 0, name_len, len} name[name_len] data[len]
 *   reply:   hdr{kind = OK | ERR, code, 0, len} data[len]
 *
 * INIT is the first request to a new worker: name = the initializer ("" for
 * none), data = its argument; the OK reply says the worker serves. CALL runs
 * a registered function: data = its input; OK carries the result, ERR the
 * negative code and a message (no NUL). PING (no name, no data) is answered
 * by PONG: the pool sends it to wake the task that reads this socket while
 * it waits for a reply (see pool/process_pool.c, "Direct sends"). Both sides reject a header whose
 * magic is wrong or whose lengths pass the documented limits, so a corrupt
 * stream ends the connection instead of an unbounded allocation. Sizes are
 * host order: both ends are the same program on the same machine.
 *
 * The worker's socket is descriptor PP_CHILD_FD in the worker, named by the
 * environment variable PP_ENV (its value is the pool's pid, for messages).
 */
#ifndef CORIO_POOL_PROCESS_WIRE_H
#define CORIO_POOL_PROCESS_WIRE_H

#include <stdint.h>

#include "corio/process_pool.h"

#define PP_ENV "CORIO_PROCESS_POOL_WORKER"
#define PP_CHILD_FD 3
#define PP_MAGIC 0x63707031u   /* "cpp1" */

enum pp_kind { PP_INIT = 1, PP_CALL = 2, PP_OK = 3, PP_ERR = 4, PP_PING = 5, PP_PONG = 6 };

struct pp_hdr {
    uint32_t magic;
    uint32_t kind;      /* enum pp_kind */
    int32_t code;       /* ERR: the negative error */
    uint32_t name_len;  /* requests: <= CORIO_PROCESS_MAX_NAME */
    uint64_t len;       /* <= CORIO_PROCESS_MAX_PAYLOAD */
};
_Static_assert(sizeof(struct pp_hdr) == 24, "the wire header is 24 bytes, no padding");

/* A header's lengths are within the limits. */
static inline bool pp_hdr_ok(const struct pp_hdr *h)
{
    return h->magic == PP_MAGIC && h->kind >= PP_INIT && h->kind <= PP_PONG &&
           h->name_len <= CORIO_PROCESS_MAX_NAME && h->len <= CORIO_PROCESS_MAX_PAYLOAD;
}

/* The library's table (pool/process_child.c). */
const corio_process_function *corio__process_lookup(const char *name);
bool corio__process_hook_seen(void);

#endif
