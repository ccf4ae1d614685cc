/* simt.cc: runs a kernel launch of the CUDA emulator. The threads of a block are coroutines
 * (ucontext) scheduled round-robin: each runs until it reaches a barrier or returns, and the
 * barrier opens when every thread still running has reached it. Blocks run one after another. */
#include "emu.h"

#include <cstdlib>
#include <sys/mman.h>
#include <ucontext.h>
#include <vector>

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

cudaError_t fl_emu_set_error(cudaError_t e);

namespace {

enum thread_state { READY, AT_BARRIER, DONE };

const size_t STACK_BYTES = 256 * 1024;

struct block_run {
    ucontext_t scheduler;
    std::vector<ucontext_t> ctx;
    std::vector<thread_state> state;
    std::vector<uint64_t> slot;
    std::vector<char *> stacks;
    const std::function<void()> *fn = nullptr;
    int current = 0;
    std::vector<char> dynamic_shared;
};

thread_local block_run *run;

void set_thread_index(int t)
{
    threadIdx.x = (unsigned)t % blockDim.x;
    threadIdx.y = (unsigned)t / blockDim.x % blockDim.y;
    threadIdx.z = (unsigned)t / (blockDim.x * blockDim.y);
}

void thread_entry(void)
{
    (*run->fn)();
    run->state[run->current] = DONE;
    /* returning switches to uc_link: the scheduler */
}

void run_block(block_run &r, int n)
{
    for (int t = 0; t < n; t++) {
        getcontext(&r.ctx[t]);
        r.ctx[t].uc_stack.ss_sp = r.stacks[t];
        r.ctx[t].uc_stack.ss_size = STACK_BYTES;
        r.ctx[t].uc_link = &r.scheduler;
        makecontext(&r.ctx[t], thread_entry, 0);
        r.state[t] = READY;
    }
    for (;;) {
        int waiting = 0;
        for (int t = 0; t < n; t++) {
            if (r.state[t] != READY)
                continue;
            r.current = t;
            set_thread_index(t);
            swapcontext(&r.scheduler, &r.ctx[t]);
        }
        for (int t = 0; t < n; t++) {
            if (r.state[t] == AT_BARRIER) {
                r.state[t] = READY;
                waiting++;
            }
        }
        if (!waiting)
            return;
    }
}

}  // namespace

void fl_emu_syncthreads(void)
{
    block_run &r = *run;
    r.state[r.current] = AT_BARRIER;
    swapcontext(&r.ctx[r.current], &r.scheduler);
}

uint64_t fl_emu_exchange(uint64_t v, int from)
{
    block_run &r = *run;
    int me = r.current, n = (int)r.slot.size();
    r.slot[me] = v;
    fl_emu_syncthreads();
    uint64_t got = from >= 0 && from < n ? r.slot[from] : v;
    fl_emu_syncthreads();
    return got;
}

void *fl_emu_dynamic_shared(void) { return run->dynamic_shared.data(); }

void fl_emu_launch(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()> &fn)
{
    unsigned long n = (unsigned long)block.x * block.y * block.z;
    if (n == 0 || n > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.y > 65535 || grid.z > 65535 || shared_bytes > 227 * 1024) {
        fl_emu_set_error(cudaErrorInvalidConfiguration);
        return;
    }
    static thread_local block_run r;
    block_run *outer = run;
    if (outer) {   /* a kernel cannot launch another here */
        fl_emu_set_error(cudaErrorLaunchFailure);
        return;
    }
    while (r.stacks.size() < n) {
        /* mapped, not malloc()ed: kept for the life of the thread, not a leak */
        void *m = mmap(nullptr, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *s = m == MAP_FAILED ? nullptr : (char *)m;
        if (!s) {
            fl_emu_set_error(cudaErrorMemoryAllocation);
            return;
        }
        r.stacks.push_back(s);
    }
    r.ctx.resize(n);
    r.state.resize(n);
    r.slot.assign(n, 0);
    r.fn = &fn;
    r.dynamic_shared.assign(shared_bytes ? shared_bytes : 1, 0);
    fl_emu_device_scope open;
    run = &r;
    gridDim = grid;
    blockDim = block;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx.x = x;
                blockIdx.y = y;
                blockIdx.z = z;
                run_block(r, (int)n);
            }
    run = nullptr;
}
