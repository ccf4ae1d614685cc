/* dtype.c: element types, their sizes and names, element load/store for generic paths,
 * and PyTorch's type promotion (bool < integers < floats; within a category the wider). */
#include "flare.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
    int rank;          /* promotion order */
} dtype_info[FL_DTYPE_COUNT] = {
    [FL_DTYPE_F32] = {"float32", 4, 4},
    [FL_DTYPE_F64] = {"float64", 8, 5},
    [FL_DTYPE_I64] = {"int64", 8, 3},
    [FL_DTYPE_I32] = {"int32", 4, 2},
    [FL_DTYPE_U8] = {"uint8", 1, 1},
    [FL_DTYPE_BOOL] = {"bool", 1, 0},
};

size_t fl_dtype_size(fl_dtype dt) { return dtype_info[dt].size; }
const char *fl_dtype_name(fl_dtype dt) { return dtype_info[dt].name; }
bool fl_dtype_is_float(fl_dtype dt) { return dt == FL_DTYPE_F32 || dt == FL_DTYPE_F64; }

int fl_dtype_from_name(const char *name)
{
    static const struct { const char *alias; fl_dtype dt; } aliases[] = {
        {"float", FL_DTYPE_F32}, {"double", FL_DTYPE_F64}, {"long", FL_DTYPE_I64},
        {"int", FL_DTYPE_I32}, {"byte", FL_DTYPE_U8},
    };
    for (int i = 0; i < FL_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0)
            return i;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(name, aliases[i].alias) == 0)
            return (int)aliases[i].dt;
    return -1;
}

fl_dtype fl_dtype_promote(fl_dtype a, fl_dtype b)
{
    return dtype_info[a].rank >= dtype_info[b].rank ? a : b;
}

double fl_load_f64(fl_dtype dt, const void *base, int64_t i)
{
    switch (dt) {
    case FL_DTYPE_F32: return ((const float *)base)[i];
    case FL_DTYPE_F64: return ((const double *)base)[i];
    case FL_DTYPE_I64: return (double)((const int64_t *)base)[i];
    case FL_DTYPE_I32: return ((const int32_t *)base)[i];
    case FL_DTYPE_U8: return ((const uint8_t *)base)[i];
    case FL_DTYPE_BOOL: return ((const uint8_t *)base)[i] != 0;
    default: return 0;
    }
}

int64_t fl_load_i64(fl_dtype dt, const void *base, int64_t i)
{
    switch (dt) {
    case FL_DTYPE_F32: return (int64_t)((const float *)base)[i];
    case FL_DTYPE_F64: return (int64_t)((const double *)base)[i];
    case FL_DTYPE_I64: return ((const int64_t *)base)[i];
    case FL_DTYPE_I32: return ((const int32_t *)base)[i];
    case FL_DTYPE_U8: return ((const uint8_t *)base)[i];
    case FL_DTYPE_BOOL: return ((const uint8_t *)base)[i] != 0;
    default: return 0;
    }
}

/* Float to integer conversion is undefined in C outside the target's range; saturate
 * instead (NaN becomes 0) so that no input can reach undefined behaviour. */
static int64_t saturate_i64(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    if (v <= lo)
        return (int64_t)lo;
    if (v >= hi)
        return v >= 9223372036854775807.0 ? INT64_MAX : (int64_t)hi;
    return (int64_t)v;
}

void fl_store_f64(fl_dtype dt, void *base, int64_t i, double v)
{
    switch (dt) {
    case FL_DTYPE_F32: ((float *)base)[i] = (float)v; break;
    case FL_DTYPE_F64: ((double *)base)[i] = v; break;
    case FL_DTYPE_I64: ((int64_t *)base)[i] = saturate_i64(v, -9223372036854775808.0, 9223372036854775807.0); break;
    case FL_DTYPE_I32: ((int32_t *)base)[i] = (int32_t)saturate_i64(v, -2147483648.0, 2147483647.0); break;
    case FL_DTYPE_U8: ((uint8_t *)base)[i] = (uint8_t)saturate_i64(v, -9223372036854775808.0, 9223372036854775807.0); break;
    case FL_DTYPE_BOOL: ((uint8_t *)base)[i] = v != 0; break;
    default: break;
    }
}

void fl_store_i64(fl_dtype dt, void *base, int64_t i, int64_t v)
{
    switch (dt) {
    case FL_DTYPE_F32: ((float *)base)[i] = (float)v; break;
    case FL_DTYPE_F64: ((double *)base)[i] = (double)v; break;
    case FL_DTYPE_I64: ((int64_t *)base)[i] = v; break;
    case FL_DTYPE_I32: ((int32_t *)base)[i] = (int32_t)(uint32_t)v; break;   /* wraps, as in PyTorch */
    case FL_DTYPE_U8: ((uint8_t *)base)[i] = (uint8_t)v; break;
    case FL_DTYPE_BOOL: ((uint8_t *)base)[i] = v != 0; break;
    default: break;
    }
}
