/* core/runq.h - a worker's local run queue (tokio's design).
 *
 * A 256-slot ring with one producer (the owning worker) and many consumers
 * (the owner popping, other workers stealing). The head word packs two 32-bit
 * indices, (steal << 32 | real): a thief first advances `real` by n - n/2 with
 * one CAS while leaving `steal` behind (claiming the range), copies the claimed
 * items into its own queue, then sets steal = real with a second CAS. While a
 * steal is in progress no other thief may start (steal != real), and the owner
 * computes free capacity from `steal`, so claimed slots are never overwritten.
 *
 * Who may call what:
 *   _owner functions: only the worker that owns @q.
 *   corio__runq_steal_into(): any thread, with @dst owned by the caller.
 *   corio__runq_len(), corio__runq_is_empty(): any thread, a snapshot.
 *
 * All atomics are C11 <stdatomic.h>, not ck_pr: ck_pr is inline assembly that
 * ThreadSanitizer cannot see, and the tsan preset must check this queue.
 */
#ifndef CORIO_CORE_RUNQ_H
#define CORIO_CORE_RUNQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "qnode.h"

struct corio__inject;

#define CORIO_RUNQ_CAP 256  /* tokio and Go both use 256; see perf W1 */
#define CORIO_RUNQ_MASK (CORIO_RUNQ_CAP - 1)

struct corio__runq {
    _Atomic uint64_t head;   /* (steal << 32) | real, both indices mod 2^32 */
    _Atomic uint32_t tail;   /* written by the owner only */
    _Atomic(struct corio__qnode *) buf[CORIO_RUNQ_CAP];
};

void corio__runq_init(struct corio__runq *q);

/* corio__runq_push_owner - append @n at the tail.
 * When the ring is full, moves the oldest CORIO_RUNQ_CAP/2 items plus @n to
 * @overflow in one batch, oldest first (and returns 1); returns 0 when @n went
 * in the ring. Reads and writes no node (the injection queue links nodes
 * only on its out-of-memory path).
 * When the ring is full while a thief is mid-steal, only @n goes to
 * @overflow (also returns 1), as tokio does.
 * Call from: the owner only. */
int corio__runq_push_owner(struct corio__runq *q, struct corio__qnode *n,
                           struct corio__inject *overflow);

/* corio__runq_push_batch_owner - append @nodes[0..@count), oldest first
 * (@count <= free capacity as returned by corio__runq_free_owner()). Copies
 * the pointers; never reads a node.
 * Call from: the owner only. */
void corio__runq_push_batch_owner(struct corio__runq *q, struct corio__qnode *const *nodes,
                                  unsigned count);

/* corio__runq_free_owner - free slots in @q. Call from: the owner only. */
unsigned corio__runq_free_owner(struct corio__runq *q);

/* corio__runq_pop_owner - take the oldest item, or NULL when empty.
 * Call from: the owner only. */
struct corio__qnode *corio__runq_pop_owner(struct corio__runq *q);
/* corio__runq_pop_owner() for a queue nobody steals from (the only worker
 * of a runtime: search() never steals there): a plain store instead of the
 * CAS (perf yield: one locked instruction less per scheduler trip). Owner
 * only. */
struct corio__qnode *corio__runq_pop_alone(struct corio__runq *q);

/* corio__runq_steal_into - move half (n - n/2) of @victim's items into @dst
 * and return one of them to run now (not placed in @dst), or NULL when
 * @victim was empty or another thief was busy with it.
 * Call from: the owner of @dst (any thread for @victim). @dst must be empty
 * enough to take CORIO_RUNQ_CAP/2 items (it is, when its owner is idle). */
struct corio__qnode *corio__runq_steal_into(struct corio__runq *victim, struct corio__runq *dst);

unsigned corio__runq_len(const struct corio__runq *q);
bool corio__runq_is_empty(const struct corio__runq *q);

#endif
