/* Train xor by SGD on the device-side API of the C target.
 *
 *   symprop generate examples/xor.toml --target c -o build
 *   cc -std=c99 -O2 -Ibuild build/xor.c examples/c/train_xor.c -o train_xor -lm && ./train_xor
 *
 * Every buffer is static storage of fixed size: no allocator anywhere.
 */
#include <stdio.h>

#include "xor.h"

#ifndef SEED
#define SEED 1u
#endif

static const xor_real X[4 * XOR_N_INPUTS] = {0, 0, 0, 1, 1, 0, 1, 1};
static const xor_real Y[4 * XOR_N_OUTPUTS] = {0, 1, 1, 0};

int main(void)
{
    xor_real params[XOR_N_PARAMS], grad[XOR_N_PARAMS], velocity[XOR_N_PARAMS] = {0}, work[XOR_WORK_SIZE];
    xor_real loss = 0;
    unsigned state = SEED;
    const xor_real lr = 2.0, momentum = 0.9; /* symprop train's xor defaults */
    for (int k = 0; k < XOR_N_PARAMS; ++k) { /* pseudo-random weights in [-1, 1) */
        state = state * 1103515245u + 12345u;
        params[k] = (xor_real)((state >> 8) % 2000u) / 1000.0 - 1.0;
    }
    for (int step = 0; step <= 3000; ++step) {
        if (xor_loss_and_grad(params, X, Y, 4, &loss, grad, work) != 0) {
            printf("error: xor_loss_and_grad refused its arguments\n");
            return 1;
        }
        if (step % 500 == 0) printf("step %4d  loss %.6f\n", step, (double)loss);
        for (int k = 0; k < XOR_N_PARAMS; ++k) { /* SGD with momentum */
            velocity[k] = momentum * velocity[k] - lr * grad[k];
            params[k] += velocity[k];
        }
    }
    {
        xor_real out[4];
        xor_forward(params, X, 4, out, work);
        for (int i = 0; i < 4; ++i) printf("xor(%g, %g) = %.3f\n", (double)X[2 * i], (double)X[2 * i + 1], (double)out[i]);
    }
    return 0;
}
