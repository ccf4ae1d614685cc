/* blas.c: loads OpenBLAS at run time, after choosing its kernels.
 *
 * OpenBLAS reads OPENBLAS_CORETYPE once, when the library loads. Debian's 0.3.21 does not
 * recognise recent CPUs (AMD Zen 4, for one) and falls back to its generic Prescott kernels,
 * 4x slower. So flare does not link OpenBLAS: it sets the core type from cpuid (unless the
 * user already set one) and only then dlopen()s the library. OpenBLAS's idle threads are
 * also told to sleep soon (OPENBLAS_THREAD_TIMEOUT) so they do not spin against flare's own
 * pool on a small machine. */

#include "blas.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fl_blas_api fl_blas;
static void *handle;
static char info[160];
static char load_error[256];

static const char *pick_coretype(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

#define LOAD(sym)                                                                   \
    do {                                                                            \
        *(void **)&fl_blas.sym = dlsym(handle, "cblas_" #sym);                      \
        if (!fl_blas.sym) {                                                         \
            snprintf(load_error, sizeof load_error, "OpenBLAS lacks cblas_" #sym);  \
            return -1;                                                              \
        }                                                                           \
    } while (0)

int fl_blas_init(void)
{
    if (handle)
        return 0;
    if (load_error[0]) {
        fl_error("%s", load_error);
        return -1;
    }
    const char *core = pick_coretype();
    if (core)
        setenv("OPENBLAS_CORETYPE", core, 0);
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
    static const char *names[] = {"libopenblas.so.0", "libopenblas.so", "libblas.so.3"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !handle; i++)
        handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(load_error, sizeof load_error,
                 "cannot load OpenBLAS (libopenblas.so.0): install libopenblas0 (%s)", dlerror());
        fl_error("%s", load_error);
        return -1;
    }
    LOAD(sgemm);
    LOAD(dgemm);
    LOAD(sgemv);
    LOAD(dgemv);
    *(void **)&fl_blas.set_num_threads = dlsym(handle, "openblas_set_num_threads");
    *(void **)&fl_blas.get_corename = dlsym(handle, "openblas_get_corename");
    *(void **)&fl_blas.get_config = dlsym(handle, "openblas_get_config");
    if (fl_blas.set_num_threads)
        fl_blas.set_num_threads(fl_get_num_threads());
    return 0;
}

void fl_blas_set_threads(int n);
void fl_blas_set_threads(int n)
{
    if (handle && fl_blas.set_num_threads)
        fl_blas.set_num_threads(n);
}

const char *fl_blas_info(void)
{
    if (fl_blas_init() < 0)
        return "BLAS not loaded";
    const char *core = fl_blas.get_corename ? fl_blas.get_corename() : "?";
    snprintf(info, sizeof info, "OpenBLAS %s (%d threads)", core, fl_get_num_threads());
    return info;
}
