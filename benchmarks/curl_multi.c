/*
 * Raw libcurl reference for bench_concurrency.py: TOTAL requests of URL
 * through one multi handle with CONCURRENCY transfers in flight, each
 * easy handle reused (kept-alive connections).
 *
 * usage: curl_multi [-e] URL TOTAL CONCURRENCY
 * -e sets CURLOPT_ACCEPT_ENCODING to "", as _mwcomms.Client does by
 * default, so that both send the same request headers.
 * output: one line "<wall seconds> <cpu seconds> <requests>"
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

static double
now(void)
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
    CURLM *multi = NULL;
    CURL **handles = NULL;
    long total, concurrency, started = 0, done = 0;
    double wall, cpu;
    int accept_encoding = 0;

    if (argc > 1 && strcmp(argv[1], "-e") == 0) {
        accept_encoding = 1;
        argv++;
        argc--;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: %s [-e] URL TOTAL CONCURRENCY\n", argv[0]);
        return 2;
    }
    total = strtol(argv[2], NULL, 10);
    concurrency = strtol(argv[3], NULL, 10);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, concurrency);
    handles = calloc((size_t)concurrency, sizeof(*handles));
    if (multi == NULL || handles == NULL) {
        return 1;
    }
    wall = now();
    cpu = cpu_seconds();
    for (long i = 0; i < concurrency && started < total; i++) {
        handles[i] = curl_easy_init();
        curl_easy_setopt(handles[i], CURLOPT_URL, argv[1]);
        curl_easy_setopt(handles[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(handles[i], CURLOPT_WRITEFUNCTION, discard);
        if (accept_encoding) {
            curl_easy_setopt(handles[i], CURLOPT_ACCEPT_ENCODING, "");
        }
        curl_multi_add_handle(multi, handles[i]);
        started++;
    }
    while (done < total) {
        int running = 0;
        int queued = 0;
        CURLMsg *message;

        curl_multi_perform(multi, &running);
        while ((message = curl_multi_info_read(multi, &queued)) != NULL) {
            if (message->msg != CURLMSG_DONE) {
                continue;
            }
            if (message->data.result != CURLE_OK) {
                fprintf(stderr, "transfer failed: %s\n",
                        curl_easy_strerror(message->data.result));
                return 1;
            }
            done++;
            curl_multi_remove_handle(multi, message->easy_handle);
            if (started < total) {
                curl_multi_add_handle(multi, message->easy_handle);
                started++;
            }
        }
        if (done < total) {
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
        }
    }
    printf("%.6f %.6f %ld\n", now() - wall, cpu_seconds() - cpu, total);
    for (long i = 0; i < concurrency; i++) {
        if (handles[i] != NULL) {
            curl_easy_cleanup(handles[i]);
        }
    }
    free(handles);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return 0;
}
