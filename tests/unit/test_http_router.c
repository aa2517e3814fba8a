/*
 * test_http_router: pattern matching of the HTTP router, without a server:
 * literal over parameter, decoded parameters, 404 versus 405, trailing
 * slashes, segment limits, bad and duplicate patterns.
 */
#include "core/http_internal.h"

#include <stdlib.h>

#include "t.h"

static void h_a(http_req_t *req, void *ud) { (void)req, (void)ud; }

static http_router_t router;
static char scratch[1024];
static http_match_t m;

static http_match_result_t match(const char *method, const char *path)
{
    return http_router_match(&router, method, path, scratch, sizeof(scratch), &m);
}

static int add(const char *method, const char *pattern)
{
    http_route_t r = {method, pattern, h_a, HTTP_PUBLIC, NULL};
    return http_router_add(&router, &r, NULL, NULL);
}

static const char *param(const char *name)
{
    for (int i = 0; i < m.nparams; i++)
        if (strcmp(m.name[i], name) == 0) return m.value[i];
    return NULL;
}

static void test_precedence(void)
{
    /* the most specific pattern owns the path: GET on the shuffle is a wrong
     * method there, not the task "shuffle" */
    T_EQ_INT(match("GET", "/api/tasks/shuffle"), HTTP_MATCH_METHOD);
    T_EQ_STR(m.allow, "POST");
    T_EQ_INT(match("GET", "/api/tasks/shuffl"), HTTP_MATCH_OK);
    T_EQ_STR(m.route->pattern, "/api/tasks/{id}");
    T_EQ_STR(param("id"), "shuffl");

    T_EQ_INT(match("POST", "/api/tasks/shuffle"), HTTP_MATCH_OK);
    T_EQ_STR(m.route->pattern, "/api/tasks/shuffle");
    T_EQ_INT(m.nparams, 0);

    T_EQ_INT(match("POST", "/api/tasks/abc/complete"), HTTP_MATCH_OK);
    T_EQ_STR(m.route->pattern, "/api/tasks/{id}/complete");
    T_EQ_STR(m.route->label, "/api/tasks/:id/complete");
    T_EQ_STR(param("id"), "abc");

    /* literal at the first differing position wins, whatever the order added */
    T_EQ_INT(match("GET", "/x/lit/any"), HTTP_MATCH_OK);
    T_EQ_STR(m.route->pattern, "/x/lit/{b}");
    T_EQ_INT(match("GET", "/x/other/tail"), HTTP_MATCH_OK);
    T_EQ_STR(m.route->pattern, "/x/{a}/tail");
    T_EQ_INT(match("GET", "/x/lit/tail"), HTTP_MATCH_OK);
    T_EQ_STR(m.route->pattern, "/x/lit/{b}");
}

static void test_params(void)
{
    T_EQ_INT(match("GET", "/api/accounting/accounts/a%20b%2Fc"), HTTP_MATCH_OK);
    T_EQ_STR(param("id"), "a b/c");
    T_CHECK(param("nope") == NULL);

    T_EQ_INT(match("GET", "/two/x%41/y%c3%a9"), HTTP_MATCH_OK);
    T_EQ_INT(m.nparams, 2);
    T_EQ_STR(param("a"), "xA");
    T_EQ_STR(param("b"), "y\xc3\xa9");

    /* bad escapes and an encoded NUL never match */
    T_EQ_INT(match("GET", "/api/tasks/%zz"), HTTP_MATCH_NOT_FOUND);
    T_EQ_INT(match("GET", "/api/tasks/ab%4"), HTTP_MATCH_NOT_FOUND);
    T_EQ_INT(match("GET", "/api/tasks/a%00b"), HTTP_MATCH_NOT_FOUND);

    /* a scratch buffer too small is a 404, never an overflow */
    T_EQ_INT(http_router_match(&router, "GET", "/api/tasks/abcdef", scratch, 4, &m),
             HTTP_MATCH_NOT_FOUND);

    char out[16];
    T_EQ_INT(http_pct_decode("a%2b%2B", 7, out), 3);
    T_EQ_STR(out, "a++");
}

static void test_not_found_vs_method(void)
{
    T_EQ_INT(match("GET", "/nothing/here"), HTTP_MATCH_NOT_FOUND);
    T_CHECK(m.route == NULL);
    T_EQ_INT(match("DELETE", "/api/tasks/abc"), HTTP_MATCH_METHOD);
    T_CHECK(m.route == NULL);
    T_EQ_STR(m.allow, "GET, HEAD, PATCH");
    T_EQ_INT(match("GET", "/api/tasks/abc/complete"), HTTP_MATCH_METHOD);
    T_EQ_STR(m.allow, "POST");
    T_EQ_INT(match("HEAD", "/api/tasks/abc"), HTTP_MATCH_OK);
    T_EQ_STR(m.route->method, "GET");
    T_EQ_INT(match("GET", "/"), HTTP_MATCH_OK);
    T_EQ_STR(m.route->pattern, "/");
    T_EQ_INT(match("GET", ""), HTTP_MATCH_NOT_FOUND);
    T_EQ_INT(match("GET", "api/tasks"), HTTP_MATCH_NOT_FOUND);
}

static void test_slashes_and_segments(void)
{
    T_EQ_INT(match("GET", "/a"), HTTP_MATCH_OK);
    T_EQ_INT(match("GET", "/a/"), HTTP_MATCH_NOT_FOUND);
    T_EQ_INT(match("GET", "//a"), HTTP_MATCH_NOT_FOUND);
    /* a parameter needs a non-empty segment */
    T_EQ_INT(match("GET", "/api/tasks/"), HTTP_MATCH_NOT_FOUND);
    T_EQ_INT(match("POST", "/api/tasks//complete"), HTTP_MATCH_NOT_FOUND);

    char deep[256] = "";
    for (int i = 0; i < 16; i++) strcat(deep, "/s");
    T_EQ_INT(match("GET", deep), HTTP_MATCH_OK);
    strcat(deep, "/s");
    T_EQ_INT(match("GET", deep), HTTP_MATCH_NOT_FOUND);
    T_EQ_INT(add("GET", deep), -1);
}

static void test_bad_patterns(void)
{
    T_EQ_INT(add("GET", "no-slash"), -1);
    T_EQ_INT(add("GET", "/a//b"), -1);
    T_EQ_INT(add("GET", "/a/{b-c}"), -1);
    T_EQ_INT(add("GET", "/a/x{b}"), -1);
    T_EQ_INT(add("GET", "/a/{}"), -1);
    T_EQ_INT(add("GET", "/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"), -1);
    /* duplicates: same method and shape, whatever the parameter names */
    T_EQ_INT(add("GET", "/api/tasks/{other}"), -1);
    T_EQ_INT(add("GET", "/a"), -1);
    T_EQ_INT(add("PUT", "/a"), 0);
    http_route_t nohandler = {"GET", "/z", NULL, HTTP_PUBLIC, NULL};
    T_EQ_INT(http_router_add(&router, &nohandler, NULL, NULL), -1);
}

int main(void)
{
    http_router_init(&router);
    T_EQ_INT(add("GET", "/api/tasks/{id}"), 0);
    T_EQ_INT(add("PATCH", "/api/tasks/{id}"), 0);
    T_EQ_INT(add("POST", "/api/tasks/shuffle"), 0);
    T_EQ_INT(add("POST", "/api/tasks/{id}/complete"), 0);
    T_EQ_INT(add("GET", "/api/accounting/accounts/{id}"), 0);
    T_EQ_INT(add("GET", "/x/{a}/tail"), 0);
    T_EQ_INT(add("GET", "/x/lit/{b}"), 0);
    T_EQ_INT(add("GET", "/two/{a}/{b}"), 0);
    T_EQ_INT(add("GET", "/a"), 0);
    T_EQ_INT(add("GET", "/"), 0);
    T_EQ_INT(add("GET", "/s/s/s/s/s/s/s/s/s/s/s/s/s/s/s/s"), 0);

    test_precedence();
    test_params();
    test_not_found_vs_method();
    test_slashes_and_segments();
    test_bad_patterns();

    http_router_free(&router);
    return t_done();
}
