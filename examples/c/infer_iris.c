/* Inference on the device with exported params: iris_classifier_forward on a few flowers.
 *
 *   make infer_iris   (trains on the host, exports iris_classifier_params.c, builds this)
 *
 * The params are a const array (flash on a microcontroller); the only RAM is work and out.
 * forward returns logits (softmax_ce): the largest one is the class.
 */
#include <stdio.h>

#include "iris_classifier.h"
#include "iris_classifier_params.h"

#define N_SAMPLES 4

/* sepal length, sepal width, petal length, petal width (cm): rows 0, 50, 100, 149 of the data */
static const iris_classifier_real X[N_SAMPLES * IRIS_CLASSIFIER_N_INPUTS] = {
    (iris_classifier_real)5.1F, (iris_classifier_real)3.5F, (iris_classifier_real)1.4F, (iris_classifier_real)0.2F,
    (iris_classifier_real)7.0F, (iris_classifier_real)3.2F, (iris_classifier_real)4.7F, (iris_classifier_real)1.4F,
    (iris_classifier_real)6.3F, (iris_classifier_real)3.3F, (iris_classifier_real)6.0F, (iris_classifier_real)2.5F,
    (iris_classifier_real)5.9F, (iris_classifier_real)3.0F, (iris_classifier_real)5.1F, (iris_classifier_real)1.8F,
};

int main(void)
{
    iris_classifier_real work[IRIS_CLASSIFIER_WORK_SIZE], out[N_SAMPLES * IRIS_CLASSIFIER_N_OUTPUTS];
    if (iris_classifier_forward(iris_classifier_params, X, N_SAMPLES, out, work) != 0) {
        printf("error: iris_classifier_forward refused its arguments\n");
        return 1;
    }
    for (int k = 0; k < N_SAMPLES; ++k) {
        int best = 0;
        printf("sample %d  logits", k);
        for (int j = 0; j < IRIS_CLASSIFIER_N_OUTPUTS; ++j) {
            const iris_classifier_real z = out[k * IRIS_CLASSIFIER_N_OUTPUTS + j];
            printf(" %.9g", (double)z);
            if (z > out[k * IRIS_CLASSIFIER_N_OUTPUTS + best]) best = j;
        }
#if IRIS_CLASSIFIER_N_CLASSES == IRIS_CLASSIFIER_N_OUTPUTS
        printf("  class %s\n", iris_classifier_class_names[best]);
#else
        printf("  class %d\n", best);
#endif
    }
    return 0;
}
