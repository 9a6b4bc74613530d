/* core/qnode.h - the intrusive link every queued item carries.
 *
 * Run queues (core/runq.c) and the global injection queue (core/inject.c) move
 * items they do not own. They only know this one-pointer node, embedded in the
 * item (a task embeds it); container_of() recovers the item. An item is on at
 * most one queue at a time, so one link suffices.
 */
#ifndef CORIO_CORE_QNODE_H
#define CORIO_CORE_QNODE_H

#include <stddef.h>

struct corio__qnode {
    struct corio__qnode *next;
};

#define corio__container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
