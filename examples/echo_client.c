/* examples/echo_client.c - a client for examples/echo_server.c.
 *
 * Usage: echo_client PORT [LINE...]
 *
 * Connects to 127.0.0.1:PORT, then sends each LINE (a newline appended) or,
 * without LINEs, each line read from stdin, and after each one waits for
 * exactly that many bytes to come back and writes them to stdout: for an
 * echo server the output is the input. stdin is read with corio_read(), so
 * the worker keeps running while the terminal or pipe has nothing (on the
 * epoll backend this makes stdin non-blocking, as asyncio's connect_read_pipe
 * does). Exit status 0, 1 when the connection fails or the server closes
 * early, 2 on a bad command line.
 *
 * asyncio equivalent:
 *     reader, writer = await asyncio.open_connection('127.0.0.1', port)
 *     for line in lines:
 *         writer.write(line); print((await reader.readexactly(len(line))).decode(), end='')
 */
#include <corio/corio.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES 65536   /* a longer stdin line goes out in pieces this big */

struct client {
    uint16_t port;
    char **lines;   /* from argv; NULL: read stdin */
    int nlines;
};

static char echo_buf[LINE_MAX_BYTES];

/* Sends @len bytes, receives exactly @len back and prints them. */
static int echo(int fd, const char *data, size_t len)
{
    ssize_t n = corio_sock_sendall(fd, data, len);
    if (n < 0)
        return (int)n;
    for (size_t got = 0; got < len; got += (size_t)n) {
        n = corio_sock_recv(fd, echo_buf + got, len - got, 0);
        if (n == 0)
            return -ECONNRESET;   /* closed before the whole echo came back */
        if (n < 0)
            return (int)n;
    }
    fwrite(echo_buf, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int echo_args(int fd, struct client *c)
{
    static char line[LINE_MAX_BYTES];
    for (int i = 0; i < c->nlines; i++) {
        size_t len = strlen(c->lines[i]);
        if (len >= sizeof line)
            return -EMSGSIZE;
        memcpy(line, c->lines[i], len);
        line[len] = '\n';
        int rc = echo(fd, line, len + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Lines of stdin, each sent once complete (or once it fills the buffer). */
static int echo_stdin(int fd)
{
    static char in[LINE_MAX_BYTES];
    size_t have = 0;
    for (;;) {
        ssize_t n = corio_read(STDIN_FILENO, in + have, sizeof in - have);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return have ? echo(fd, in, have) : 0;   /* a last line without '\n' */
        have += (size_t)n;
        size_t start = 0;
        char *nl;
        while ((nl = memchr(in + start, '\n', have - start))) {
            size_t len = (size_t)(nl - (in + start)) + 1;
            int rc = echo(fd, in + start, len);
            if (rc < 0)
                return rc;
            start += len;
        }
        if (start == 0 && have == sizeof in) {
            int rc = echo(fd, in, have);   /* a line longer than the buffer */
            if (rc < 0)
                return rc;
            start = have;
        }
        memmove(in, in + start, have - start);
        have -= start;
    }
}

static void *main_task(void *arg)
{
    struct client *c = arg;
    int fd = corio_tcp_connect("127.0.0.1", c->port);
    if (fd < 0) {
        fprintf(stderr, "echo_client: connect to 127.0.0.1:%u: %s\n", c->port,
                corio_strerror(fd));
        return (void *)1;
    }
    int rc = c->lines ? echo_args(fd, c) : echo_stdin(fd);
    corio_close(fd);
    if (rc < 0) {
        fprintf(stderr, "echo_client: %s\n", corio_strerror(rc));
        return (void *)1;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: echo_client PORT [LINE...]\n");
        return 2;
    }
    char *end;
    unsigned long port = strtoul(argv[1], &end, 10);
    if (*argv[1] == '\0' || argv[1][0] == '-' || *end != '\0' || port == 0 || port > 65535) {
        fprintf(stderr, "echo_client: bad port '%s'\nusage: echo_client PORT [LINE...]\n",
                argv[1]);
        return 2;
    }
    struct client c = { .port = (uint16_t)port, .lines = argc > 2 ? argv + 2 : NULL,
                        .nlines = argc - 2 };
    corio_rt_options opts = { .workers = 1 };   /* one connection: one worker is plenty */
    void *failed = NULL;
    int rc = corio_run(main_task, &c, &opts, &failed);
    if (rc < 0)
        fprintf(stderr, "echo_client: %s\n", corio_strerror(rc));
    return rc == 0 && !failed ? 0 : 1;
}
