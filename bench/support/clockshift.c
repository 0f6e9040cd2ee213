/* LD_PRELOAD shim: shift this process's wall clock by CLOCK_SHIFT_SECONDS (negative: behind).
 *
 * Only the wall clock (CLOCK_REALTIME*, gettimeofday, time) moves; CLOCK_MONOTONIC and the
 * sleeps built on it are left alone, which is what libfaketime 0.9.10 gets wrong here
 * (Python's time.sleep stalls under it). Built by bench/faults/drills_between_machines.py:
 *     gcc -shared -fPIC -O2 -o clockshift.so clockshift.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift_seconds(void) {
    static int ready = 0;
    static long shift = 0;
    if (!ready) {
        const char *value = getenv("CLOCK_SHIFT_SECONDS");
        shift = value ? atol(value) : 0;
        ready = 1;
    }
    return shift;
}

int clock_gettime(clockid_t clock, struct timespec *tp) {
    static int (*real)(clockid_t, struct timespec *) = NULL;
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int result = real(clock, tp);
    if (result == 0 && tp && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) tp->tv_sec += shift_seconds();
    return result;
}

int gettimeofday(struct timeval *tv, void *tz) {
    static int (*real)(struct timeval *, void *) = NULL;
    if (!real) real = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
    int result = real(tv, tz);
    if (result == 0 && tv) tv->tv_sec += shift_seconds();
    return result;
}

time_t time(time_t *out) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (out) *out = now.tv_sec;
    return now.tv_sec;
}
