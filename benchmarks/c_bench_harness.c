/* Timing harness for benchmarks/targets.py: calls a generated loss_and_grad `reps` times in a C
 * loop and returns the thread CPU seconds spent. Compiled into the same shared library as the
 * generated source (another translation unit, no LTO: every call is a real call). */
#include <stddef.h>
#include <time.h>

typedef int (*loss_and_grad_fn)(const double *, const double *, const double *, size_t, double *, double *, double *);

double symprop_bench_loop(loss_and_grad_fn f, long reps, const double *params, const double *x, const double *y,
                          size_t n, double *loss, double *grad, double *work)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (long r = 0; r < reps; ++r) {
        if (f(params, x, y, n, loss, grad, work) != 0) return -1.0;
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    return (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
}
