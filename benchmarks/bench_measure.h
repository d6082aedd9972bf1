/*
 * Clock and memory readings shared by the raw libcurl programs of the
 * benchmark suite (curl_loop.c and curl_multi.c).
 */
#ifndef BENCH_MEASURE_H
#define BENCH_MEASURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

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

/*
 * Return the peak resident set size in KiB: VmHWM from /proc/self/status,
 * because Linux carries ru_maxrss over exec() from the parent process.
 */
static long
peak_rss_kib(void)
{
    char line[256];
    long peak = -1;
    FILE *status = fopen("/proc/self/status", "r");

    if (status == NULL) {
        struct rusage usage;

        getrusage(RUSAGE_SELF, &usage);
        return usage.ru_maxrss;
    }
    while (fgets(line, sizeof(line), status) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            peak = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(status);
    return peak;
}

#endif /* BENCH_MEASURE_H */
