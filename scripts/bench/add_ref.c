/* add_ref.c: the yardstick for flare's add_large: a plain C loop c[i] = a[i] + b[i] over
 * 16M-element float32 buffers allocated (and touched) once, on one thread and split over
 * two threads. A warm-up, 5 timed runs, the median. Prints milliseconds per add.
 *
 *   cc -O2 -pthread -o add_ref add_ref.c && ./add_ref */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N (16L << 20)
#define REPEATS 5
#define ITERS 10

static float *a, *b, *c;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *x, const void *y)
{
    double p = *(const double *)x, q = *(const double *)y;
    return (p > q) - (p < q);
}

/* c[begin:end] = a[begin:end] + b[begin:end] */
static void add_range(long begin, long end)
{
    for (long i = begin; i < end; i++)
        c[i] = a[i] + b[i];
}

static void *second_half(void *arg)
{
    (void)arg;
    add_range(N / 2, N);
    return NULL;
}

static void add_1thread(void)
{
    add_range(0, N);
}

/* A thread per call, as the simplest correct split (its creation costs ~20 µs of ~10 ms). */
static void add_2threads(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, second_half, NULL) != 0) {
        add_range(0, N);
        return;
    }
    add_range(0, N / 2);
    pthread_join(t, NULL);
}

static double ms_per_add(void (*fn)(void))
{
    double runs[REPEATS];
    fn();   /* warm-up */
    for (int r = 0; r < REPEATS; r++) {
        double t0 = now();
        for (int i = 0; i < ITERS; i++)
            fn();
        runs[r] = (now() - t0) / ITERS * 1e3;
    }
    qsort(runs, REPEATS, sizeof runs[0], cmp_double);
    return runs[REPEATS / 2];
}

int main(void)
{
    a = malloc(N * sizeof *a);
    b = malloc(N * sizeof *b);
    c = malloc(N * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "add_ref: out of memory\n");
        return 1;
    }
    for (long i = 0; i < N; i++) {
        a[i] = (float)(i % 1000) * 0.001f;
        b[i] = 1.0f - a[i];
        c[i] = 0;
    }
    printf("add_large:threads=1 %.6g ms\n", ms_per_add(add_1thread));
    printf("add_large:threads=2 %.6g ms\n", ms_per_add(add_2threads));
    /* keep the result observable so the loops are not optimised away */
    double sum = 0;
    for (long i = 0; i < N; i += 4096)
        sum += c[i];
    if (sum < 0)
        printf("%g\n", sum);
    free(a);
    free(b);
    free(c);
    return 0;
}
