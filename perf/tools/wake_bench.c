/* perf/tools/wake_bench.c - how fast can one thread wake another that
 * sleeps in io_uring_enter()? DESIGN.md asks corio to compare the eventfd
 * it writes (the sleeper keeps a read of it armed on its ring) with
 * IORING_OP_MSG_RING sent from the waker's own ring, and keep the faster;
 * a futex, where the sleeper has nothing in flight, is the floor.
 *
 * Two threads ping-pong N times: each wakes the other, then sleeps until
 * woken. Prints one line per method: round trips per second and ns per
 * wake-up (half a round trip). Both rings are made as corio makes them
 * (SINGLE_ISSUER|DEFER_TASKRUN, falling back to none).
 *
 * Usage: wake_bench [N]   (default 200000)
 * Build: cc -O2 wake_bench.c -o wake_bench -luring -lpthread
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum method { EVENTFD, MSG_RING, FUTEX };

struct side {
    struct io_uring ring;
    int efd;
    uint64_t buf;
    _Atomic uint32_t word;   /* futex */
    pthread_barrier_t *ready;
};

static struct side sides[2];
static enum method method;
static long rounds;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void ring_init(struct side *s)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init_params(64, &s->ring, &p) < 0) {
        memset(&p, 0, sizeof p);
        if (io_uring_queue_init_params(64, &s->ring, &p) < 0) {
            perror("io_uring_queue_init");
            exit(1);
        }
    }
}

static void arm_read(struct side *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    io_uring_prep_read(sqe, s->efd, &s->buf, sizeof s->buf, 0);
    io_uring_sqe_set_data64(sqe, 1);
}

/* Sleep until woken; for eventfd, re-arm the read as corio does. */
static void sleep_once(struct side *s)
{
    if (method == FUTEX) {
        while (atomic_exchange(&s->word, 0) == 0)
            syscall(SYS_futex, (uint32_t *)&s->word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
        return;
    }
    struct io_uring_cqe *cqe;
    for (;;) {
        if (method == EVENTFD)
            arm_read(s);
        int rc = io_uring_submit_and_wait(&s->ring, 1);
        if (rc < 0 && rc != -EINTR) {
            fprintf(stderr, "wait: %s\n", strerror(-rc));
            exit(1);
        }
        unsigned head, n = 0, got = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe) {
            n++;
            if (io_uring_cqe_get_data64(cqe) == 1 || io_uring_cqe_get_data64(cqe) == 2)
                got = 1;
        }
        io_uring_cq_advance(&s->ring, n);
        if (got)
            return;
    }
}

static void wake_other(struct side *self, struct side *other)
{
    if (method == FUTEX) {
        atomic_store(&other->word, 1);
        syscall(SYS_futex, (uint32_t *)&other->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    } else if (method == EVENTFD) {
        uint64_t one = 1;
        if (write(other->efd, &one, sizeof one) < 0)
            exit(1);
    } else {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&self->ring);
        io_uring_prep_msg_ring(sqe, other->ring.ring_fd, 0, 2, 0);
        sqe->rw_flags = 0;
        io_uring_sqe_set_data64(sqe, 3);   /* the sender's own CQE: ignored */
        io_uring_submit(&self->ring);
    }
}

static void *player(void *arg)
{
    int me = (int)(intptr_t)arg;
    struct side *self = &sides[me], *other = &sides[1 - me];
    ring_init(self);
    pthread_barrier_wait(self->ready);
    for (long i = 0; i < rounds; i++) {
        if (me == 0) {
            wake_other(self, other);
            sleep_once(self);
        } else {
            sleep_once(self);
            wake_other(self, other);
        }
    }
    io_uring_queue_exit(&self->ring);
    return NULL;
}

static void run(enum method m, const char *name)
{
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, 3);
    method = m;
    for (int i = 0; i < 2; i++) {
        sides[i].efd = eventfd(0, EFD_CLOEXEC);
        atomic_store(&sides[i].word, 0);
        sides[i].ready = &ready;
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, player, (void *)(intptr_t)i);
    pthread_barrier_wait(&ready);
    uint64_t t0 = now_ns();
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    double s = (double)(now_ns() - t0) / 1e9;
    printf("%-9s %9.0f round trips/s  %7.0f ns per wake-up\n", name, rounds / s,
           s * 1e9 / (2.0 * rounds));
    for (int i = 0; i < 2; i++)
        close(sides[i].efd);
    pthread_barrier_destroy(&ready);
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? atol(argv[1]) : 200000;
    if (rounds <= 0) {
        fprintf(stderr, "usage: wake_bench [N]\n");
        return 2;
    }
    run(EVENTFD, "eventfd");
    run(MSG_RING, "msg_ring");
    run(FUTEX, "futex");
    return 0;
}
