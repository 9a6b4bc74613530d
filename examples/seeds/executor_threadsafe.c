/* examples/seeds/executor_threadsafe.c - a plain thread feeds a coroutine to
 * a runtime running on a second thread.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "multithreading+asyncio总结",
 * the Tkinter window program, without the window:
 *
 *     async def calculate(self):
 *         await asyncio.sleep(3)
 *         self.label["text"]=300
 *
 *     def get_loop(self,loop):
 *         self.loop=loop
 *         asyncio.set_event_loop(self.loop)
 *         self.loop.run_forever()
 *
 *     def change_form_state(self):
 *         coroutine1 = self.calculate()
 *         new_loop = asyncio.new_event_loop()
 *         t = threading.Thread(target=self.get_loop,args=(new_loop,))
 *         t.start()
 *         asyncio.run_coroutine_threadsafe(coroutine1,new_loop)
 *
 * The window shows the label "等待计算结果" (waiting for the result) and,
 * 3 s after the button is pressed, "300", while the GUI thread stays free.
 *
 * Changed: no window. The main thread plays the GUI thread: it prints the
 * label's text, presses the button (change_form_state), keeps "handling
 * events" (it waits on the concurrent future, as a GUI would poll it), and
 * prints the label again once the coroutine has set it. run_forever is a
 * main task that waits until the GUI thread lets it end; then the loop
 * thread is joined, as closing the window would.
 */
#include <corio/corio.h>
#include <corio/executor.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct form {
    char label[32];
    corio_rt *loop;
    corio_cfuture *quit;   /* set by the GUI thread: run_forever ends */
    pthread_t t;
};

static void *calculate(void *arg)
{
    struct form *self = arg;
    int err = corio_sleep(3000000000);
    if (err < 0)
        corio_raise(err, "sleep: %s", corio_strerror(err));
    snprintf(self->label, sizeof self->label, "%d", 300);
    return NULL;
}

/* loop.run_forever(): the main task waits (awaiting, not blocking) until
 * the GUI thread says stop. */
static void *run_forever(void *arg)
{
    struct form *self = arg;
    return (void *)(intptr_t)corio_cfuture_result(self->quit, CORIO_WAIT_FOREVER, NULL);
}

static void *get_loop(void *arg)
{
    struct form *self = arg;
    int err = corio_rt_run(self->loop, run_forever, self, NULL);
    if (err < 0)
        fprintf(stderr, "seed_executor_threadsafe: run: %s\n", corio_strerror(err));
    return NULL;
}

static int change_form_state(struct form *self, corio_cfuture **fut)
{
    corio_rt_options opts = {.workers = 1};
    int err = corio_rt_create(&self->loop, &opts);   /* new_event_loop() */
    if (err < 0)
        return err;
    if (pthread_create(&self->t, NULL, get_loop, self) != 0)
        return -EAGAIN;
    return corio_run_coroutine_threadsafe(self->loop, calculate, self, fut);
}

int main(void)
{
    struct form self = {.label = "等待计算结果"};
    corio_cfuture *fut = NULL;
    int err = corio_cfuture_create(&self.quit);

    printf("%s\n", self.label);
    if (err == 0)
        err = change_form_state(&self, &fut);
    if (err == 0)
        err = corio_cfuture_result(fut, CORIO_WAIT_FOREVER, NULL);
    if (err == 0)
        printf("%s\n", self.label);
    if (self.loop) {
        corio_cfuture_set_result(self.quit, NULL);   /* the window closes */
        pthread_join(self.t, NULL);
        corio_rt_destroy(self.loop);
    }
    corio_cfuture_unref(fut);
    corio_cfuture_unref(self.quit);
    if (err < 0) {
        fprintf(stderr, "seed_executor_threadsafe: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
