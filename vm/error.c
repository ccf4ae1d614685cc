/* error.c: the engine's error channel. A failing function writes a message here and returns
 * NULL or -1; the binding layer turns it into a Lua error. One buffer per thread. */
#include "flare.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

const char *fl_last_error(void)
{
    return last_error[0] ? last_error : "unknown error";
}

void fl_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *fl_shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}
