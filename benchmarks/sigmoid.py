"""Which sigmoid form the emitted ``_sigmoid`` uses, per dtype: measured, not assumed.

Run:  python benchmarks/sigmoid.py [--reps N]

Single-threaded (OMP/OPENBLAS/MKL_NUM_THREADS=1 before NumPy is imported); each time is the
minimum over --reps repetitions of 200 calls, the two forms interleaved in one process, on a
256 x 256 array (65,536 elements, the size of a hidden layer of the runtime benchmark):

* exp form: negative, exp, +1, 1/s as np.divide(1.0, s), in one buffer (the emitted helper's);
* exp form with np.reciprocal for 1/s (the helper's before 2026-11-30);
* tanh form: 0.5 * tanh(0.5 x) + 0.5, in one buffer (the helper's float32 form before 2026-11-30).

On a Zen 3 (AVX2) VM, float32: exp 115 us, exp with reciprocal 124, tanh 195; float64: 400, 420-455,
940. Issue 21 measured the tanh form about twice as fast as exp + reciprocal on an AVX-512 CPU,
where NumPy has an AVX-512 tanh: rerun this there before trusting either number.

It also prints the worst relative error of each form against float64 1/(1+exp(-x)) on
[-80, 0] (the left tail, where the value is tiny) and on [-9, 9].
"""

from __future__ import annotations

import argparse
import os
import timeit

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402


def exp_form(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        s = np.negative(x)
        np.exp(s, out=s)
    s += 1.0
    return np.divide(1.0, s, out=s)


def exp_reciprocal_form(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        s = np.negative(x)
        np.exp(s, out=s)
    s += 1.0
    return np.reciprocal(s, out=s)


def tanh_form(x: np.ndarray) -> np.ndarray:
    s = np.multiply(x, 0.5)
    np.tanh(s, out=s)
    s *= 0.5
    s += 0.5
    return s


def worst_relative_error(form, lo: float, hi: float, dtype: type) -> float:  # type: ignore[no-untyped-def]
    x = np.linspace(lo, hi, 65_536).astype(dtype)
    exact = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    return float(np.max(np.abs(form(x) - exact) / exact))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    print(
        "| dtype | exp form µs | exp + reciprocal µs | tanh form µs | tanh / exp "
        "| rel. error exp, tanh on [-9, 9] | on [-80, 0] |"
    )
    print("|---|---:|---:|---:|---:|---|---|")
    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(0).normal(scale=3.0, size=(256, 256)).astype(dtype)
        t_exp = min(timeit.repeat(lambda: exp_form(x), number=200, repeat=args.reps)) / 200 * 1e6  # noqa: B023
        t_rec = min(timeit.repeat(lambda: exp_reciprocal_form(x), number=200, repeat=args.reps)) / 200 * 1e6  # noqa: B023
        t_tanh = min(timeit.repeat(lambda: tanh_form(x), number=200, repeat=args.reps)) / 200 * 1e6  # noqa: B023
        mid = [worst_relative_error(f, -9, 9, dtype) for f in (exp_form, tanh_form)]
        tail = [worst_relative_error(f, -80, 0, dtype) for f in (exp_form, tanh_form)]
        print(
            f"| {np.dtype(dtype).name} | {t_exp:.1f} | {t_rec:.1f} | {t_tanh:.1f} | {t_tanh / t_exp:.2f} "
            f"| {mid[0]:.1e}, {mid[1]:.1e} | {tail[0]:.1e}, {tail[1]:.1e} |"
        )


if __name__ == "__main__":
    main()
