/* Train xor on the device: init_params, then Adam steps until the loss is below a target.
 *
 *   make run        (host; see the Makefile: symprop generate examples/xor.toml --target c)
 *   make arm        (Cortex-M4F objects: train_xor without main, float only)
 *
 * Float-clean: every constant is an xor_real (casts of F literals), so the file compiles without
 * warnings under -Wconversion -Wdouble-promotion in both reals, and train() pulls no software
 * double into a float build (the host main() prints through double, as printf must).
 * No allocator, no static mutable state: every buffer is the caller's.
 */
#include "xor.h"

#ifndef SEED
#define SEED 1UL
#endif
#ifndef TARGET_LOSS
#define TARGET_LOSS 0.002F /* half the mean squared error over the four cases */
#endif
#ifndef MAX_STEPS
#define MAX_STEPS 5000UL
#endif

static const xor_real X[4 * XOR_N_INPUTS] = {0, 0, 0, 1, 1, 0, 1, 1};
static const xor_real Y[4 * XOR_N_OUTPUTS] = {0, 1, 1, 0};

/* params from init_params(seed), then Adam (lr 0.05, torch's betas and eps) until the loss is
 * below target or max_steps; returns the steps taken, 0 on an error.  *loss: the last loss. */
unsigned long train(xor_real *params, unsigned long seed, xor_real target, unsigned long max_steps, xor_real *loss);

unsigned long train(xor_real *params, unsigned long seed, xor_real target, unsigned long max_steps, xor_real *loss)
{
    xor_real grad[XOR_N_PARAMS], m[XOR_N_PARAMS] = {0}, v[XOR_N_PARAMS] = {0}, work[XOR_WORK_SIZE];
    const xor_real lr = (xor_real)0.05F, beta1 = (xor_real)0.9F, beta2 = (xor_real)0.999F, eps = (xor_real)1e-8F;
    unsigned long step;
    if (xor_init_params(params, seed) != 0) return 0;
    for (step = 1; step <= max_steps; ++step) {
        if (xor_loss_and_grad(params, X, Y, 4, loss, grad, work) != 0) return 0;
        if (*loss < target) return step;
        if (xor_adam_step(params, grad, m, v, step, lr, beta1, beta2, eps) != 0) return 0;
    }
    return max_steps;
}

#ifndef NO_MAIN
#include <stdio.h>

int main(void)
{
    xor_real params[XOR_N_PARAMS], work[XOR_WORK_SIZE], out[4], loss = 0;
    const unsigned long steps = train(params, SEED, (xor_real)TARGET_LOSS, MAX_STEPS, &loss);
    if (steps == 0 || xor_forward(params, X, 4, out, work) != 0) {
        printf("error: a generated function refused its arguments\n");
        return 1;
    }
    printf("steps %lu  loss %.9g  %s\n", steps, (double)loss, loss < (xor_real)TARGET_LOSS ? "reached" : "NOT reached");
    for (int i = 0; i < 4; ++i) printf("xor(%g, %g) = %.9g\n", (double)X[2 * i], (double)X[2 * i + 1], (double)out[i]);
    for (int k = 0; k < XOR_N_PARAMS; ++k) printf("param %d %.9g\n", k, (double)params[k]);
    return loss < (xor_real)TARGET_LOSS ? 0 : 2;
}
#endif
