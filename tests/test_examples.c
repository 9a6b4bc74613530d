/* tests/test_examples.c - the examples outside examples/seeds/ build, run and
 * print what their comments (and the README) say they print. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(examples_hello_prints_squares),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
