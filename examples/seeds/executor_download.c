/* examples/seeds/executor_download.c - a blocking HTTP client in the default
 * thread pool, while the event loop serves.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "第三方模块不支持协程方式异步
 * 编程" (a third-party module without coroutine support):
 *
 *     async def download_image(url):
 *         print("开始下载:", url)
 *         loop = asyncio.get_event_loop()
 *         # requests模块默认不支持异步操作,所以就使用线程池来配合实现了。
 *         future = loop.run_in_executor(None, requests.get, url)
 *         response = await future
 *         print('下载完成')
 *         file_name = url.rsplit('_')[-1]
 *         with open(file_name, mode='wb') as file_object:
 *             file_object.write(response.content)
 *
 *     url_list = [ <three https://www*.autoimg.cn/...jpg URLs> ]
 *     tasks = [download_image(url) for url in url_list]
 *     loop = asyncio.get_event_loop()
 *     loop.run_until_complete(asyncio.wait(tasks))
 *
 * Python prints the three "开始下载: <url>" lines, then "下载完成" three
 * times as the downloads finish.
 *
 * Changed: no network. A corio HTTP server on 127.0.0.1 (a task of the same
 * runtime, on the same one worker) plays the three hosts: requests.get
 * becomes blocking_get(), a plain blocking socket client that connects to
 * it and sends the URL's host in its Host header (as a hosts-file entry
 * would), so the same URLs are printed. Each "image" is some bytes that
 * name its path. The files go to a temporary folder, are checked, and are
 * removed at the end.
 */
#include <corio/corio.h>
#include <corio/executor.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NURLS 3

static const char *const url_list[NURLS] = {
    "https://www3.autoimg.cn/newsdfs/g26/M02/35/A9/120x90_0_autohomecar__ChsEe12AXQ6AOOH_AAFocMs8nzU621.jpg",
    "https://www2.autoimg.cn/newsdfs/g30/M01/3C/E2/120x90_0_autohomecar__ChcCSV2BBICAUntfAADjJFd6800429.jpg",
    "https://www3.autoimg.cn/newsdfs/g26/M0B/3C/65/120x90_0_autohomecar__ChcCP12BFCmAIO83AAGq7vK0sGY193.jpg",
};

static uint16_t server_port;
static char dir[64] = "/tmp/corio-download-XXXXXX";

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

/* The image at @path: its path repeated, 1000 bytes. */
static void image_of(const char *path, char *out, size_t len)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < len; i++)
        out[i] = path[i % n];
}

/* ---- the server (tasks) ---- */

static void *serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[2048] = "", path[512] = "", body[1000], head[128];
    size_t used = 0;
    while (used < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
        ssize_t n = corio_sock_recv(fd, req + used, sizeof req - 1 - used, 0);
        if (n <= 0)
            break;
        used += (size_t)n;
        req[used] = '\0';
    }
    req[used] = '\0';
    if (sscanf(req, "GET %511s", path) == 1) {
        image_of(path, body, sizeof body);
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                          sizeof body);
        corio_sock_sendall(fd, head, (size_t)hl);
        corio_sock_sendall(fd, body, sizeof body);
    }
    corio_close(fd);
    return NULL;
}

static void *server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = corio_sock_accept(lfd, NULL, NULL);
        if (fd < 0)
            return NULL;   /* cancelled: the downloads are done */
        check(corio_spawn(NULL, serve_conn, (void *)(intptr_t)fd), "spawn");
    }
}

/* ---- the blocking client (pool threads) ---- */

struct response {
    char *content;
    size_t len;
};

/* requests.get(url): plain blocking sockets, HTTP/1.1, Connection: close. */
static void *blocking_get(void *arg)
{
    const char *url = arg;
    const char *host = strstr(url, "://") + 3, *path = strchr(host, '/');
    char req[1024], buf[4096];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %.*s\r\nConnection: close\r\n\r\n",
                     path, (int)(path - host), host);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(server_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        send(fd, req, (size_t)n, 0) != n) {
        if (fd >= 0)
            close(fd);
        corio_executor_raise(-ECONNREFUSED, "requests.get: cannot connect");
        return NULL;
    }
    struct response *r = calloc(1, sizeof *r);
    char *all = NULL;
    size_t len = 0;
    ssize_t k;
    while ((k = recv(fd, buf, sizeof buf, 0)) > 0) {
        all = realloc(all, len + (size_t)k + 1);
        memcpy(all + len, buf, (size_t)k);
        len += (size_t)k;
    }
    close(fd);
    char *body = all ? strstr(all, "\r\n\r\n") : NULL;
    if (r && body) {
        all[len] = '\0';
        r->len = len - (size_t)(body + 4 - all);
        r->content = malloc(r->len);
        memcpy(r->content, body + 4, r->len);
    }
    free(all);
    return r;
}

/* ---- the seed ---- */

static void *download_image(void *arg)
{
    const char *url = arg;
    void *v = NULL;
    printf("开始下载: %s\n", url);
    check(corio_run_in_executor(NULL, blocking_get, (void *)url, &v), "run_in_executor");
    struct response *response = v;
    printf("下载完成\n");
    char file_name[256];
    snprintf(file_name, sizeof file_name, "%s/%s", dir, strrchr(url, '_') + 1);
    FILE *file_object = fopen(file_name, "wb");
    if (file_object) {
        fwrite(response->content, 1, response->len, file_object);
        fclose(file_object);
    }
    free(response->content);
    free(response);
    return NULL;
}

/* Each saved file holds its image; then it goes. */
static int check_files(void)
{
    int bad = 0;
    for (int i = 0; i < NURLS; i++) {
        char name[256], want[1000], got[1001];
        snprintf(name, sizeof name, "%s/%s", dir, strrchr(url_list[i], '_') + 1);
        image_of(strchr(strstr(url_list[i], "://") + 3, '/'), want, sizeof want);
        FILE *f = fopen(name, "rb");
        size_t n = f ? fread(got, 1, sizeof got, f) : 0;
        if (f)
            fclose(f);
        bad |= n != sizeof want || memcmp(got, want, n) != 0;
        remove(name);
    }
    rmdir(dir);
    return bad ? -EIO : 0;
}

static void *main_task(void *arg)
{
    corio_task *srv, *tasks[NURLS];
    (void)arg;
    int lfd = corio_tcp_listen("127.0.0.1", 0, 0, &server_port);
    check(lfd, "listen");
    check(corio_spawn(&srv, server, (void *)(intptr_t)lfd), "spawn server");
    for (int i = 0; i < NURLS; i++)
        check(corio_spawn(&tasks[i], download_image, (void *)url_list[i]), "spawn");
    int err = corio_gather_tasks(tasks, NURLS, 0, NULL, NULL);
    for (int i = 0; i < NURLS; i++)
        corio_task_unref(tasks[i]);
    corio_task_cancel(srv, NULL);
    corio_await(srv, NULL);
    corio_task_unref(srv);
    corio_close(lfd);
    check(err, "download");
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1};
    if (!mkdtemp(dir)) {
        perror("seed_executor_download: mkdtemp");
        return 1;
    }
    int err = corio_run(main_task, NULL, &opts, NULL);
    int files = check_files();
    if (err < 0 || files < 0) {
        fprintf(stderr, "seed_executor_download: %s\n", corio_strerror(err < 0 ? err : files));
        return 1;
    }
    return 0;
}
