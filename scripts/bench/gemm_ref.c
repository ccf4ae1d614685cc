/* gemm_ref.c: the ceiling for flare's gemm: cblas_sgemm called directly on square float32
 * matrices (run with OPENBLAS_CORETYPE set, as flare does). Same timing rules as the Lua
 * side: a warm-up, 5 timed runs of at least 0.2 s, the median. Prints GFLOP/s.
 *
 *   cc -O2 -o gemm_ref gemm_ref.c -lopenblas && ./gemm_ref 256 1024 2048 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define REPEATS 5

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* c = a·b, all n x n row-major, `iters` times. */
static void run(float *c, const float *a, const float *b, int n, long iters)
{
    for (long i = 0; i < iters; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
}

static double seconds_per_product(float *c, const float *a, const float *b, int n)
{
    long iters = 1;
    for (;;) {
        double t0 = now();
        run(c, a, b, n, iters);
        if (now() - t0 >= 0.2 / 4)
            break;
        iters *= 2;
    }
    iters *= 4;
    run(c, a, b, n, iters);   /* warm-up */
    double runs[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        double t0 = now();
        run(c, a, b, n, iters);
        runs[r] = (now() - t0) / iters;
    }
    qsort(runs, REPEATS, sizeof runs[0], cmp_double);
    return runs[REPEATS / 2];
}

int main(int argc, char **argv)
{
    static const int defaults[] = {256, 1024, 2048};
    int count = argc > 1 ? argc - 1 : 3;
    for (int k = 0; k < count; k++) {
        int n = argc > 1 ? atoi(argv[k + 1]) : defaults[k];
        if (n <= 0) {
            fprintf(stderr, "gemm_ref: bad size '%s'\n", argv[k + 1]);
            return 1;
        }
        size_t nn = (size_t)n * n;
        float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
        if (!a || !b || !c) {
            fprintf(stderr, "gemm_ref: out of memory\n");
            return 1;
        }
        srand(0);
        for (size_t i = 0; i < nn; i++) {
            a[i] = (float)rand() / RAND_MAX - 0.5f;
            b[i] = (float)rand() / RAND_MAX - 0.5f;
        }
        double s = seconds_per_product(c, a, b, n);
        printf("gemm:n=%d %.6g gflops\n", n, 2.0 * n * n * (double)n / s / 1e9);
        fflush(stdout);
        free(a);
        free(b);
        free(c);
    }
    return 0;
}
