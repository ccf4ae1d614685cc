/* parallel.c: flare's own small thread pool for elementwise and reduction kernels.
 *
 * Why not OpenMP: libgomp's workers spin-wait by default and fight OpenBLAS's threads for the
 * cores (a 3x slowdown measured on 2-core machines), and its wait policy is fixed when the
 * library loads. These workers spin only briefly and then sleep on a condition variable, so
 * BLAS and the pool take turns. The caller always runs a share of the work itself. */

#include "flare.h"
#include "interrupt.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define SPIN_SECONDS 50e-6

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int nthreads;          /* wanted, including the caller */
    int nworkers;          /* started */
    pthread_t workers[MAX_THREADS];
    /* The job being run. `claim` packs (generation << 32 | chunk count << 16 | next chunk),
     * so a worker waking late can never take a chunk of a later job by mistake. */
    _Atomic uint64_t claim;
    fl_range_fn fn;
    void *ctx;
    int64_t n, chunk;
    _Atomic int chunks_done;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static _Thread_local bool inside_pool;

static int cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int fl_get_num_threads(void)
{
    if (pool.nthreads == 0)
        pool.nthreads = cpu_count() < MAX_THREADS ? cpu_count() : MAX_THREADS;
    return pool.nthreads;
}

/* Takes chunks of job `gen` until none is left. */
static void work_chunks(uint32_t gen)
{
    for (;;) {
        uint64_t c = atomic_load(&pool.claim);
        uint32_t nchunks = (c >> 16) & 0xffff, next = c & 0xffff;
        if ((uint32_t)(c >> 32) != gen || next >= nchunks)
            return;
        if (!atomic_compare_exchange_weak(&pool.claim, &c, c + 1))
            continue;
        int64_t begin = next * pool.chunk, end = begin + pool.chunk;
        if (!fl_interrupted())   /* Ctrl-C: skip the chunks not started (still counted done) */
            pool.fn(pool.ctx, begin, end < pool.n ? end : pool.n);
        atomic_fetch_add(&pool.chunks_done, 1);
    }
}

static uint32_t claim_generation(void)
{
    return (uint32_t)(atomic_load(&pool.claim) >> 32);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *worker_main(void *arg)
{
    (void)arg;
    inside_pool = true;
    uint32_t seen = 0;
    for (;;) {
        /* spin briefly (a job often follows another), bounded in time, not in rounds:
         * on a loaded machine a round of sched_yield can take a whole time slice */
        double until = now_seconds() + SPIN_SECONDS;
        while (claim_generation() == seen && now_seconds() < until)
            sched_yield();
        if (claim_generation() == seen) {
            pthread_mutex_lock(&pool.lock);
            while (claim_generation() == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = claim_generation();
        work_chunks(seen);
    }
    return NULL;
}

static void start_workers(int want)
{
    while (pool.nworkers < want) {
        if (pthread_create(&pool.workers[pool.nworkers], NULL, worker_main, NULL) != 0)
            break;
        pthread_detach(pool.workers[pool.nworkers]);
        pool.nworkers++;
    }
}

void fl_parallel_for(int64_t n, int64_t grain, fl_range_fn fn, void *ctx)
{
    int threads = fl_get_num_threads();
    if (grain < 1)
        grain = 1;
    int64_t nchunks = (n + grain - 1) / grain;
    if (nchunks > threads)
        nchunks = threads;
    if (inside_pool || nchunks <= 1) {
        fn(ctx, 0, n);
        return;
    }
    start_workers(threads - 1);
    if (pool.nworkers == 0) {
        fn(ctx, 0, n);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.chunk = (n + nchunks - 1) / nchunks;
    atomic_store(&pool.chunks_done, 0);
    uint32_t gen = claim_generation() + 1;
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.claim, (uint64_t)gen << 32 | (uint64_t)nchunks << 16);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    inside_pool = true;
    work_chunks(gen);
    inside_pool = false;
    while (atomic_load(&pool.chunks_done) < nchunks)
        sched_yield();
}

void fl_blas_set_threads(int n);

void fl_set_num_threads(int n)
{
    if (n < 1)
        n = 1;
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    pool.nthreads = n;
    fl_blas_set_threads(n);
}
