/*
 * Raw libcurl reference for the benchmark suite: TOTAL requests of URL
 * through one multi handle with CONCURRENCY transfers in flight, each
 * easy handle reused (kept-alive connections).
 *
 * usage: curl_multi [-e] [-w WARMUP] [-t SECONDS] [-l LENGTH]
 *                   URL TOTAL CONCURRENCY
 * -e sets CURLOPT_ACCEPT_ENCODING to "", as _mwcomms.Client does by
 * default, so that both send the same request headers.
 * -w sends WARMUP requests the same way before the timed part.
 * -t starts no new transfer after SECONDS of wall time (the ones in
 * flight finish), so fewer than TOTAL requests may be sent.
 * -l exits with status 1 unless every body is LENGTH bytes.  Every
 * response must have status 200 in any case.
 * output: one line
 * "<wall seconds> <cpu seconds> <requests> <connections> <peak RSS KiB>"
 * where the first three cover the timed part and <connections> counts
 * the connections opened for all requests, warm-up included.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_measure.h"

static size_t
count_bytes(char *data, size_t size, size_t nmemb, void *userdata)
{
    size_t *length = userdata;

    (void)data;
    *length += size * nmemb;
    return size * nmemb;
}

/* Check one finished transfer; return 0, or 1 after printing why not. */
static int
check_transfer(CURLMsg *message, size_t length, long expected_length,
               long *connections)
{
    long status = 0;
    long connects = 0;

    if (message->data.result != CURLE_OK) {
        fprintf(stderr, "transfer failed: %s\n",
                curl_easy_strerror(message->data.result));
        return 1;
    }
    curl_easy_getinfo(message->easy_handle, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(message->easy_handle, CURLINFO_NUM_CONNECTS, &connects);
    *connections += connects;
    if (status != 200) {
        fprintf(stderr, "expected status 200, got %ld\n", status);
        return 1;
    }
    if (expected_length >= 0 && length != (size_t)expected_length) {
        fprintf(stderr, "expected a body of %ld bytes, got %zu\n",
                expected_length, length);
        return 1;
    }
    return 0;
}

/*
 * Run up to total transfers, concurrency at a time, starting none after
 * deadline (0: no deadline).  Return the number done, or -1 on failure.
 */
static long
run_phase(CURLM *multi, CURL **handles, size_t *lengths, long concurrency,
          long total, double deadline, long expected_length,
          long *connections)
{
    long started = 0;
    long done = 0;
    long in_flight = 0;

    for (long i = 0; i < concurrency && started < total; i++) {
        lengths[i] = 0;
        curl_multi_add_handle(multi, handles[i]);
        started++;
        in_flight++;
    }
    while (in_flight > 0) {
        int running = 0;
        int queued = 0;
        CURLMsg *message;

        curl_multi_perform(multi, &running);
        while ((message = curl_multi_info_read(multi, &queued)) != NULL) {
            long slot = 0;

            if (message->msg != CURLMSG_DONE) {
                continue;
            }
            while (handles[slot] != message->easy_handle) {
                slot++;
            }
            if (check_transfer(message, lengths[slot], expected_length,
                               connections)) {
                return -1;
            }
            done++;
            in_flight--;
            curl_multi_remove_handle(multi, handles[slot]);
            if (started < total && (deadline == 0 || wall_seconds() < deadline)) {
                lengths[slot] = 0;
                curl_multi_add_handle(multi, handles[slot]);
                started++;
                in_flight++;
            }
        }
        if (in_flight > 0) {
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
        }
    }
    return done;
}

int
main(int argc, char **argv)
{
    CURLM *multi = NULL;
    CURL **handles = NULL;
    size_t *lengths = NULL;
    long total, concurrency, done = 0;
    long warmup = 0;
    long connections = 0;
    long expected_length = -1;
    double seconds = 0;
    double wall, cpu;
    int accept_encoding = 0;
    int status = 1;
    while (argc > 1 && argv[1][0] == '-') {
        if (strcmp(argv[1], "-e") == 0) {
            accept_encoding = 1;
            argv++;
            argc--;
            continue;
        }
        if (argc < 3) {
            break;
        }
        if (strcmp(argv[1], "-w") == 0) {
            warmup = strtol(argv[2], NULL, 10);
        }
        else if (strcmp(argv[1], "-t") == 0) {
            seconds = strtod(argv[2], NULL);
        }
        else if (strcmp(argv[1], "-l") == 0) {
            expected_length = strtol(argv[2], NULL, 10);
        }
        else {
            break;
        }
        argv += 2;
        argc -= 2;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: %s [-e] [-w WARMUP] [-t SECONDS] "
                "[-l LENGTH] URL TOTAL CONCURRENCY\n", argv[0]);
        return 2;
    }
    total = strtol(argv[2], NULL, 10);
    concurrency = strtol(argv[3], NULL, 10);
    if (concurrency < 1) {
        fprintf(stderr, "CONCURRENCY must be at least 1\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    multi = curl_multi_init();
    handles = calloc((size_t)concurrency, sizeof(*handles));
    lengths = calloc((size_t)concurrency, sizeof(*lengths));
    if (multi == NULL || handles == NULL || lengths == NULL) {
        goto done;
    }
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, concurrency);
    for (long i = 0; i < concurrency; i++) {
        handles[i] = curl_easy_init();
        if (handles[i] == NULL) {
            goto done;
        }
        curl_easy_setopt(handles[i], CURLOPT_URL, argv[1]);
        curl_easy_setopt(handles[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(handles[i], CURLOPT_WRITEFUNCTION, count_bytes);
        curl_easy_setopt(handles[i], CURLOPT_WRITEDATA, &lengths[i]);
        if (accept_encoding) {
            curl_easy_setopt(handles[i], CURLOPT_ACCEPT_ENCODING, "");
        }
    }
    if (warmup > 0 && run_phase(multi, handles, lengths, concurrency, warmup,
                                0, expected_length, &connections) < 0) {
        goto done;
    }
    wall = wall_seconds();
    cpu = cpu_seconds();
    done = run_phase(multi, handles, lengths, concurrency, total,
                     seconds > 0 ? wall + seconds : 0, expected_length,
                     &connections);
    if (done < 0) {
        goto done;
    }
    wall = wall_seconds() - wall;
    cpu = cpu_seconds() - cpu;
    printf("%.6f %.6f %ld %ld %ld\n", wall, cpu, done, connections,
           peak_rss_kib());
    status = 0;
done:
    if (handles != NULL) {
        for (long i = 0; i < concurrency; i++) {
            if (handles[i] != NULL) {
                curl_multi_remove_handle(multi, handles[i]);
                curl_easy_cleanup(handles[i]);
            }
        }
    }
    free(handles);
    free(lengths);
    if (multi != NULL) {
        curl_multi_cleanup(multi);
    }
    curl_global_cleanup();
    return status;
}
