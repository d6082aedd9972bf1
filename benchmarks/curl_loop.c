/*
 * Raw libcurl reference for bench_http.py: N requests over one easy
 * handle (one kept-alive connection), printing the client CPU time.
 *
 * usage: curl_loop [-e] [-k] [-b BYTES] URL N [POSTBODY [HEADER]]
 * -e sets CURLOPT_ACCEPT_ENCODING to "" (every encoding libcurl can
 * decode), as _mwcomms.Client does by default, so that both send the
 * same request headers.
 * -k keeps each body: it is copied into a buffer sized from the
 * Content-Length and freed after the request, as a client that returns
 * the body must do.  Without -k the body is discarded.
 * -b sets CURLOPT_BUFFERSIZE (libcurl's receive buffer) to BYTES.
 * output: one line "<cpu seconds> <requests> <wall seconds>"
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static size_t
discard(char *data, size_t size, size_t nmemb, void *userdata)
{
    (void)data;
    (void)userdata;
    return size * nmemb;
}

/* Body of the current request, kept with -k. */
typedef struct {
    CURL *curl;
    char *data;
    size_t length;
    size_t capacity;
} body_buffer;

static size_t
keep(char *data, size_t size, size_t nmemb, void *userdata)
{
    body_buffer *body = userdata;
    size_t length = size * nmemb;

    if (body->data == NULL) {
        curl_off_t expected = -1;

        curl_easy_getinfo(body->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                          &expected);
        body->capacity = expected > 0 ? (size_t)expected : 16384;
        body->data = malloc(body->capacity);
        if (body->data == NULL) {
            return 0;
        }
    }
    if (length > body->capacity - body->length) {
        size_t capacity = body->capacity * 2 + length;
        char *grown = realloc(body->data, capacity);

        if (grown == NULL) {
            return 0;
        }
        body->data = grown;
        body->capacity = capacity;
    }
    memcpy(body->data + body->length, data, length);
    body->length += length;
    return length;
}

static double
wall_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
cpu_seconds(void)
{
    struct rusage usage;

    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6
           + usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
    CURL *curl = NULL;
    struct curl_slist *headers = NULL;
    long count;
    double start;
    double wall;
    int accept_encoding = 0;
    int keep_body = 0;
    long buffer_size = 0;
    body_buffer body = {NULL, NULL, 0, 0};

    while (argc > 1 && argv[1][0] == '-') {
        if (strcmp(argv[1], "-e") == 0) {
            accept_encoding = 1;
        }
        else if (strcmp(argv[1], "-k") == 0) {
            keep_body = 1;
        }
        else if (strcmp(argv[1], "-b") == 0 && argc > 2) {
            buffer_size = strtol(argv[2], NULL, 10);
            argv++;
            argc--;
        }
        else {
            break;
        }
        argv++;
        argc--;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s [-e] [-k] [-b BYTES] URL N [POSTBODY "
                "[HEADER]]\n", argv[0]);
        return 2;
    }
    count = strtol(argv[2], NULL, 10);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    if (curl == NULL) {
        return 1;
    }
    headers = curl_slist_append(headers, "Expect:");
    if (argc > 4) {
        headers = curl_slist_append(headers, argv[4]);
    }
    curl_easy_setopt(curl, CURLOPT_URL, argv[1]);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (keep_body) {
        body.curl = curl;
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    }
    else {
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    }
    if (buffer_size > 0) {
        curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, buffer_size);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (accept_encoding) {
        curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
    }
    if (argc > 3) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, argv[3]);
    }
    start = cpu_seconds();
    wall = wall_seconds();
    for (long i = 0; i < count; i++) {
        CURLcode code = curl_easy_perform(curl);

        if (code != CURLE_OK) {
            fprintf(stderr, "curl_easy_perform: %s\n",
                    curl_easy_strerror(code));
            return 1;
        }
        free(body.data);
        body.data = NULL;
        body.length = 0;
    }
    printf("%.9f %ld %.9f\n", cpu_seconds() - start, count,
           wall_seconds() - wall);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return 0;
}
