/*
 * fetch: GET a JSON document with libcurl (see fetch.h).
 */
#include "fetch.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "json.h"

typedef struct body {
    char *data;
    size_t len;
    bool too_large;
} body_t;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    body_t *b = userdata;
    size_t n = size * nmemb;
    if (n > (size_t)FETCH_MAX_BODY - b->len) { /* b->len <= FETCH_MAX_BODY */
        b->too_large = true;
        return 0; /* abort the transfer */
    }
    char *grown = realloc(b->data, b->len + n + 1);
    if (!grown) return 0;
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int fetch_json(const char *url, long timeout_ms, cJSON **out)
{
    pthread_once(&curl_once, curl_init);
    CURL *curl = curl_easy_init();
    if (!curl) return diag_set(DIAG_INTERNAL, "curl_easy_init failed");
    body_t b = {0};
    long status = 0;
    int rc = -1;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    CURLcode res = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (b.too_large) {
        diag_set(DIAG_VALIDATION, "GET %s: body over %d bytes", url, FETCH_MAX_BODY);
    } else if (res != CURLE_OK) {
        diag_set(DIAG_UNAVAILABLE, "GET %s: %s", url, curl_easy_strerror(res));
    } else if (status < 200 || status > 299) {
        diag_set(DIAG_UNAVAILABLE, "GET %s: status %ld", url, status);
    } else if (!(*out = json_parse_strict(b.data ? b.data : "", b.len))) {
        diag_set(DIAG_VALIDATION, "GET %s: the body is not JSON", url);
    } else {
        rc = 0;
    }
    free(b.data);
    curl_easy_cleanup(curl);
    return rc;
}
