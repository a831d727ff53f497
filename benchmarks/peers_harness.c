/* Timing harness for benchmarks/peers.py, compiled into one shared library with a net's symprop C
 * source and its CasADi SX and MX sources (separate translation units, no LTO: every call is a
 * real call). REAL is double or float (-DREAL=...), the same type as symprop_real and casadi_real.
 *
 * symprop_loop: `reps` calls of symprop's <name>_loss_and_grad on a batch of n.
 * casadi_loop:  `reps` evaluations of a CasADi function (loss and gradient of ONE sample) over a
 *               batch of n: at n = 1 one direct call into loss and grad; otherwise what a C user
 *               writes around it: zero, call per sample, accumulate, scale by 1/n once.
 * Both return the thread CPU seconds spent. */
#include <stddef.h>
#include <time.h>

#ifndef REAL
#define REAL double
#endif
typedef long long int casadi_int;

typedef int (*symprop_fn)(const REAL *, const REAL *, const REAL *, size_t, REAL *, REAL *, REAL *);
typedef int (*casadi_fn)(const REAL **, REAL **, casadi_int *, REAL *, int);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double symprop_loop(symprop_fn f, long reps, const REAL *params, const REAL *x, const REAL *y, size_t n, REAL *loss,
                    REAL *grad, REAL *work)
{
    double t0 = now();
    for (long r = 0; r < reps; ++r) {
        if (f(params, x, y, n, loss, grad, work) != 0) return -1.0;
    }
    return now() - t0;
}

static int casadi_batch(casadi_fn f, const REAL *params, const REAL *x, const REAL *y, size_t n, size_t n_in,
                        size_t n_out, size_t n_params, REAL *loss, REAL *grad, REAL *tmp, casadi_int *iw, REAL *w)
{
    const REAL *arg[3] = {params, x, y};
    REAL *res[2] = {loss, grad};
    if (n == 1) return f(arg, res, iw, w, 0);
    REAL l = 0, total = 0;
    res[0] = &l;
    res[1] = tmp;
    for (size_t i = 0; i < n_params; ++i) grad[i] = 0;
    for (size_t k = 0; k < n; ++k) {
        arg[1] = x + k * n_in;
        arg[2] = y + k * n_out;
        if (f(arg, res, iw, w, 0) != 0) return 1;
        total += l;
        for (size_t i = 0; i < n_params; ++i) grad[i] += tmp[i];
    }
    const REAL inv = (REAL)1 / (REAL)n;
    for (size_t i = 0; i < n_params; ++i) grad[i] *= inv;
    *loss = total * inv;
    return 0;
}

double casadi_loop(casadi_fn f, long reps, const REAL *params, const REAL *x, const REAL *y, size_t n, size_t n_in,
                   size_t n_out, size_t n_params, REAL *loss, REAL *grad, REAL *tmp, casadi_int *iw, REAL *w)
{
    double t0 = now();
    for (long r = 0; r < reps; ++r) {
        if (casadi_batch(f, params, x, y, n, n_in, n_out, n_params, loss, grad, tmp, iw, w) != 0) return -1.0;
    }
    return now() - t0;
}
