/* core/qnode.h - the intrusive link every queued item carries.
 *
 * Run queues (core/runq.c) and the global injection queue (core/inject.c) move
 * items they do not own; they store pointers to this node, embedded in the
 * item (a task embeds it), and container_of() recovers the item. The link
 * itself is used only where a list is cheaper than an array: the injection
 * queue's out-of-memory spill list, the registry's retired stacks and the
 * per-worker free lists, each while the item is on no other list.
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
