/* tests/test_examples.c - the examples outside examples/seeds/ build, run and
 * print (or serve) what their comments (and the README) say.
 *
 * The servers (echo_server, http_server) run as child processes on port 0;
 * the test reads the port from their first line, talks to them with plain
 * blocking sockets (5 s receive timeout, so a server that stops answering
 * fails the case instead of hanging it), checks every reply byte for byte,
 * then stops them with SIGTERM or SIGINT and expects exit status 0. A case
 * that fails midway leaves its server to the teardown, which kills it. They
 * inherit CORIO_BACKEND, so tests/run exercises both backends.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void examples_hello_prints_squares(void **state)
{
    (void)state;
    FILE *p = popen(CORIO_EXAMPLES_DIR "/hello", "r");
    assert_non_null(p);
    char out[256] = {0};
    size_t n = fread(out, 1, sizeof out - 1, p);
    int status = pclose(p);
    assert_true(n > 0);
    assert_string_equal(out, "squares: 1 4 9\n");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- a server in a child process ---------------------------------------- */

struct server {
    pid_t pid;       /* 0: none running */
    int out;         /* read end of its stdout */
    unsigned port;
    char line[256];  /* its first line */
};

static struct server srv;   /* the case's server, for the teardown */

/* Reads the child's first line within 10 s. */
static void read_first_line(struct server *s)
{
    size_t have = 0;
    while (have < sizeof s->line - 1 && !memchr(s->line, '\n', have)) {
        struct pollfd p = { .fd = s->out, .events = POLLIN };
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t n = read(s->out, s->line + have, sizeof s->line - 1 - have);
        assert_true(n > 0);
        have += (size_t)n;
    }
    s->line[have] = '\0';
}

/* Starts CORIO_EXAMPLES_DIR/@name with argument "0" and parses the port from
 * its first line, "... listening on 127.0.0.1:<port>". */
static void start_server(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", CORIO_EXAMPLES_DIR, name);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(path, path, "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    srv = (struct server){ .pid = pid, .out = fds[0] };
    read_first_line(&srv);
    const char *colon = strrchr(srv.line, ':');
    assert_non_null(strstr(srv.line, "listening on 127.0.0.1:"));
    assert_non_null(colon);
    srv.port = (unsigned)strtoul(colon + 1, NULL, 10);
    assert_true(srv.port > 0 && srv.port < 65536);
}

/* Waits up to 10 s for the server to exit; returns its wait status, or -1. */
static int wait_server(void)
{
    for (int i = 0; i < 1000; i++) {
        int status;
        pid_t r = waitpid(srv.pid, &status, WNOHANG);
        if (r == srv.pid) {
            srv.pid = 0;
            close(srv.out);
            return status;
        }
        nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
    }
    return -1;
}

/* Sends @sig and expects a clean exit (status 0). */
static void stop_server(int sig)
{
    assert_int_equal(kill(srv.pid, sig), 0);
    int status = wait_server();
    assert_int_not_equal(status, -1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int teardown_server(void **state)
{
    (void)state;
    if (srv.pid > 0) {
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
        close(srv.out);
        srv.pid = 0;
    }
    return 0;
}

/* ---- plain blocking sockets ---------------------------------------------- */

static int connect_to(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = send(fd, (const char *)buf + done, len - done, MSG_NOSIGNAL);
        assert_true(n > 0);
        done += (size_t)n;
    }
}

/* Receives exactly @len bytes (fails on EOF or after the 5 s timeout). */
static void recv_exact(int fd, void *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
}

/* Expects the peer to close: recv returns 0 (not a timeout). */
static void expect_eof(int fd)
{
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
}

static void expect_reply(int fd, const char *want)
{
    size_t len = strlen(want);
    char *got = malloc(len + 1);
    assert_non_null(got);
    recv_exact(fd, got, len);
    got[len] = '\0';
    assert_string_equal(got, want);
    free(got);
}

/* A port nothing listens on (the kernel's pick, released again). */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Runs @cmd through the shell; returns its output (static) and *@status. */
static const char *run_cmd(const char *cmd, int *status)
{
    static char out[4096];
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    *status = pclose(p);
    return out;
}

/* ---- echo_server / echo_client ------------------------------------------- */

static void examples_echo_server_echoes_bytes(void **state)
{
    (void)state;
    start_server("echo_server");
    int a = connect_to(srv.port), b = connect_to(srv.port);

    send_all(a, "hello\n", 6);
    expect_reply(a, "hello\n");

    unsigned char bin[256], back[256];   /* every byte value, NUL included */
    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)(255 - i);
    send_all(b, bin, sizeof bin);
    recv_exact(b, back, sizeof back);
    assert_memory_equal(back, bin, sizeof bin);

    static unsigned char big[4096], big_back[4096];
    for (int round = 0; round < 16; round++) {   /* 64 KiB, 4 KiB at a time */
        for (size_t i = 0; i < sizeof big; i++)
            big[i] = (unsigned char)(i * 7 + (size_t)round);
        send_all(a, big, sizeof big);
        recv_exact(a, big_back, sizeof big_back);
        assert_memory_equal(big_back, big, sizeof big);
    }

    shutdown(b, SHUT_WR);   /* the client's EOF: the server closes its side */
    expect_eof(b);
    close(b);
    stop_server(SIGTERM);   /* with a still open: its task is cancelled */
    expect_eof(a);
    close(a);
}

static void examples_echo_server_stops_on_sigint(void **state)
{
    (void)state;
    start_server("echo_server");
    stop_server(SIGINT);
}

static void examples_echo_server_rejects_bad_port(void **state)
{
    (void)state;
    int status;
    run_cmd(CORIO_EXAMPLES_DIR "/echo_server notaport 2>/dev/null", &status);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
}

static void examples_echo_client_prints_echoes(void **state)
{
    (void)state;
    start_server("echo_server");
    char cmd[512];
    int status;
    snprintf(cmd, sizeof cmd, "%s/echo_client %u hello 'two words' ''", CORIO_EXAMPLES_DIR,
             srv.port);
    assert_string_equal(run_cmd(cmd, &status), "hello\ntwo words\n\n");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    stop_server(SIGTERM);
}

static void examples_echo_client_reads_stdin(void **state)
{
    (void)state;
    start_server("echo_server");
    char cmd[512];
    int status;
    snprintf(cmd, sizeof cmd, "printf 'one\\ntwo\\nno newline' | %s/echo_client %u",
             CORIO_EXAMPLES_DIR, srv.port);
    assert_string_equal(run_cmd(cmd, &status), "one\ntwo\nno newline");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    stop_server(SIGTERM);
}

static void examples_echo_client_reports_refused(void **state)
{
    (void)state;
    char cmd[512];
    int status;
    snprintf(cmd, sizeof cmd, "%s/echo_client %u hello 2>&1", CORIO_EXAMPLES_DIR, free_port());
    const char *out = run_cmd(cmd, &status);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_non_null(strstr(out, "echo_client: connect to 127.0.0.1:"));
}

/* ---- http_server ----------------------------------------------------------- */

#define HELLO "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n" \
              "Hello, World!"
#define HELLO_CLOSE "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n" \
                    "Connection: close\r\n\r\nHello, World!"
#define GET "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"

/* Skips the case when CMake did not find http_parser. */
static void start_http_server(void)
{
    if (access(CORIO_EXAMPLES_DIR "/http_server", X_OK) != 0) {
        print_message("http_server not built (no libhttp-parser-dev): skipped\n");
        skip();
    }
    start_server("http_server");
}

static void examples_http_server_keeps_alive(void **state)
{
    (void)state;
    start_http_server();
    int fd = connect_to(srv.port);
    for (int i = 0; i < 2; i++) {   /* one after the other on one connection */
        send_all(fd, GET, strlen(GET));
        expect_reply(fd, HELLO);
    }
    send_all(fd, GET GET GET, 3 * strlen(GET));   /* pipelined, in one segment */
    expect_reply(fd, HELLO HELLO HELLO);
    send_all(fd, "GET / HT", 8);                  /* one request split in two sends */
    nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
    send_all(fd, "TP/1.1\r\nHost: x\r\n\r\n", 19);
    expect_reply(fd, HELLO);
    const char head[] = "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, head, strlen(head));             /* no body for HEAD */
    expect_reply(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n");
    send_all(fd, GET, strlen(GET));               /* and still in step */
    expect_reply(fd, HELLO);

    static char many[200 * sizeof GET];           /* more answers than one output buffer */
    size_t len = 0;
    for (int i = 0; i < 200; i++, len += strlen(GET))
        memcpy(many + len, GET, strlen(GET));
    send_all(fd, many, len);
    for (int i = 0; i < 200; i++)
        expect_reply(fd, HELLO);
    close(fd);
    stop_server(SIGTERM);
}

static void examples_http_server_closes_when_asked(void **state)
{
    (void)state;
    start_http_server();
    int fd = connect_to(srv.port);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" GET;
    send_all(fd, req, strlen(req));   /* the GET after the close is not answered */
    expect_reply(fd, HELLO_CLOSE);
    expect_eof(fd);
    close(fd);

    fd = connect_to(srv.port);        /* HTTP/1.0 without keep-alive closes too */
    const char old[] = "GET / HTTP/1.0\r\n\r\n";
    send_all(fd, old, strlen(old));
    expect_reply(fd, HELLO_CLOSE);
    expect_eof(fd);
    close(fd);
    stop_server(SIGINT);
}

static void examples_http_server_rejects_garbage(void **state)
{
    (void)state;
    start_http_server();
    int fd = connect_to(srv.port);
    const char junk[] = "\x01\x02 not http\r\n\r\n";
    send_all(fd, junk, strlen(junk));
    expect_reply(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    expect_eof(fd);
    close(fd);

    fd = connect_to(srv.port);        /* the server still serves others */
    send_all(fd, GET, strlen(GET));
    expect_reply(fd, HELLO);
    stop_server(SIGTERM);             /* with fd open: its task is cancelled */
    close(fd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(examples_hello_prints_squares),
        cmocka_unit_test_teardown(examples_echo_server_echoes_bytes, teardown_server),
        cmocka_unit_test_teardown(examples_echo_server_stops_on_sigint, teardown_server),
        cmocka_unit_test(examples_echo_server_rejects_bad_port),
        cmocka_unit_test_teardown(examples_echo_client_prints_echoes, teardown_server),
        cmocka_unit_test_teardown(examples_echo_client_reads_stdin, teardown_server),
        cmocka_unit_test(examples_echo_client_reports_refused),
        cmocka_unit_test_teardown(examples_http_server_keeps_alive, teardown_server),
        cmocka_unit_test_teardown(examples_http_server_closes_when_asked, teardown_server),
        cmocka_unit_test_teardown(examples_http_server_rejects_garbage, teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
