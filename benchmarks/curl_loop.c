/*
 * Raw libcurl reference for the benchmark suite: N requests over one easy
 * handle (one kept-alive connection), printing the client CPU time.
 *
 * usage: curl_loop [-e] [-k] [-b BYTES] [-w WARMUP] [-t SECONDS]
 *                  [-l LENGTH] URL N [POSTBODY [HEADER]]
 * -e sets CURLOPT_ACCEPT_ENCODING to "" (every encoding libcurl can
 * decode), as _mwcomms.Client does by default, so that both send the
 * same request headers.
 * -k keeps each body: it is copied into a buffer sized from the
 * Content-Length and freed after the request, as a client that returns
 * the body must do.  Without -k the body is discarded.
 * -b sets CURLOPT_BUFFERSIZE (libcurl's receive buffer) to BYTES.
 * -w sends WARMUP requests before the timed loop.
 * -t ends the timed loop after SECONDS of wall time, or after N requests,
 * whichever comes first.
 * -l exits with status 1 unless every body is LENGTH bytes (after
 * decoding).  Every response must have status 200 in any case.
 * output: one line
 * "<cpu seconds> <requests> <wall seconds> <connections> <peak RSS KiB>"
 * where the first three cover the timed loop and <connections> counts
 * the connections opened for all requests, warm-up included.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_measure.h"

/* Body of the current request: kept with -k, only counted without. */
typedef struct {
    CURL *curl;
    int keep;
    char *data;
    size_t length;
    size_t capacity;
} body_buffer;

static size_t
receive(char *data, size_t size, size_t nmemb, void *userdata)
{
    body_buffer *body = userdata;
    size_t length = size * nmemb;

    if (!body->keep) {
        body->length += length;
        return length;
    }
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

/* Send one request; return 0, or 1 after printing what was wrong. */
static int
perform(CURL *curl, body_buffer *body, long expected_length,
        long *connections)
{
    CURLcode code = curl_easy_perform(curl);
    long status = 0;
    long connects = 0;
    int failed = 0;

    if (code != CURLE_OK) {
        fprintf(stderr, "curl_easy_perform: %s\n", curl_easy_strerror(code));
        failed = 1;
    }
    else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects);
        *connections += connects;
        if (status != 200) {
            fprintf(stderr, "expected status 200, got %ld\n", status);
            failed = 1;
        }
        else if (expected_length >= 0
                 && body->length != (size_t)expected_length) {
            fprintf(stderr, "expected a body of %ld bytes, got %zu\n",
                    expected_length, body->length);
            failed = 1;
        }
    }
    free(body->data);
    body->data = NULL;
    body->length = 0;
    return failed;
}

int
main(int argc, char **argv)
{
    CURL *curl = NULL;
    struct curl_slist *headers = NULL;
    long count;
    long warmup = 0;
    long done = 0;
    long connections = 0;
    long expected_length = -1;
    double seconds = 0;
    double cpu;
    double wall;
    double deadline;
    int accept_encoding = 0;
    long buffer_size = 0;
    int status = 0;
    body_buffer body = {NULL, 0, NULL, 0, 0};

    while (argc > 1 && argv[1][0] == '-') {
        if (strcmp(argv[1], "-e") == 0) {
            accept_encoding = 1;
        }
        else if (strcmp(argv[1], "-k") == 0) {
            body.keep = 1;
        }
        else if (argc > 2 && strcmp(argv[1], "-b") == 0) {
            buffer_size = strtol(argv[2], NULL, 10);
        }
        else if (argc > 2 && strcmp(argv[1], "-w") == 0) {
            warmup = strtol(argv[2], NULL, 10);
        }
        else if (argc > 2 && strcmp(argv[1], "-t") == 0) {
            seconds = strtod(argv[2], NULL);
        }
        else if (argc > 2 && strcmp(argv[1], "-l") == 0) {
            expected_length = strtol(argv[2], NULL, 10);
        }
        else {
            break;
        }
        if (strcmp(argv[1], "-e") != 0 && strcmp(argv[1], "-k") != 0) {
            argv++;
            argc--;
        }
        argv++;
        argc--;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s [-e] [-k] [-b BYTES] [-w WARMUP] "
                "[-t SECONDS] [-l LENGTH] URL N [POSTBODY [HEADER]]\n",
                argv[0]);
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
    body.curl = curl;
    curl_easy_setopt(curl, CURLOPT_URL, argv[1]);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, receive);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
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
    for (long i = 0; i < warmup && status == 0; i++) {
        status = perform(curl, &body, expected_length, &connections);
    }
    cpu = cpu_seconds();
    wall = wall_seconds();
    deadline = wall + seconds;
    while (status == 0 && done < count) {
        status = perform(curl, &body, expected_length, &connections);
        done++;
        if (seconds > 0 && wall_seconds() >= deadline) {
            break;
        }
    }
    cpu = cpu_seconds() - cpu;
    wall = wall_seconds() - wall;
    if (status == 0) {
        printf("%.9f %ld %.9f %ld %ld\n", cpu, done, wall, connections,
               peak_rss_kib());
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return status;
}
