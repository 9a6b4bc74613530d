/* core/stack.c - interim: one mapping per stack, until the pooled arena lands (being written now). */
#include <sys/mman.h>
#include <errno.h>
#include <unistd.h>
#include "stack.h"
int corio__stack_arena_init(struct corio__stack_arena *a, size_t d){ a->page=4096; a->slot_size=d?d:CORIO_STACK_DEFAULT_SIZE; a->guard=CORIO_GUARD_MADVISE; return 0;}
void corio__stack_arena_fini(struct corio__stack_arena *a){(void)a;}
void corio__stack_cache_init(struct corio__stack_cache *c){c->n=0;}
void corio__stack_cache_fini(struct corio__stack_cache *c, struct corio__stack_arena *a){(void)c;(void)a;}
int corio__stack_alloc(struct corio__stack_cache *c, struct corio__stack_arena *a, size_t size, struct corio__stack *out){(void)c; size_t s=size?size:a->slot_size; void *p=mmap(0,s,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE,-1,0); if(p==MAP_FAILED) return -ENOMEM; out->lo=p; out->size=s; out->map=p; out->map_len=s; return 0;}
void corio__stack_free(struct corio__stack_cache *c, struct corio__stack_arena *a, struct corio__stack *s){(void)c;(void)a; munmap(s->map,s->map_len);}
bool corio__stack_canary_ok(const struct corio__stack_arena *a, const struct corio__stack *s){(void)a;(void)s;return true;}
bool corio__stack_in_guard(const struct corio__stack *s, const void *addr, size_t page){ return (const char*)addr >= (const char*)s->lo - page && (const char*)addr < (const char*)s->lo; }
