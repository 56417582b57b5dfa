/*
 * LD_PRELOAD shim for running the test suite under Debian's libfaketime 0.9.10 with
 * FAKETIME_DONT_FAKE_MONOTONIC=1 (see `make test-timeshift`).
 *
 * Why: Python 3.11's time.sleep() sleeps with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME).
 * libfaketime 0.9.10 wraps clock_nanosleep and shifts that absolute monotonic deadline by the
 * fake offset even when the monotonic clock is not faked, so every sleep fails with EINVAL.
 * Monotonic sleeps here go straight to the kernel; realtime sleeps keep libfaketime's handling.
 * Loaded before libfaketime, this definition wins the symbol lookup.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *request,
                    struct timespec *remain) {
    if (clock_id == CLOCK_MONOTONIC || clock_id == CLOCK_MONOTONIC_RAW ||
        clock_id == CLOCK_BOOTTIME) {
        long rc = syscall(SYS_clock_nanosleep, clock_id, flags, request, remain);
        return rc == 0 ? 0 : errno;
    }
    static int (*next)(clockid_t, int, const struct timespec *, struct timespec *);
    if (!next) {
        next = (int (*)(clockid_t, int, const struct timespec *, struct timespec *))dlsym(
            RTLD_NEXT, "clock_nanosleep");
    }
    return next(clock_id, flags, request, remain);
}
