/* vmath.h: float32 exp, tanh and sigmoid as branch-free inline code that the compiler
 * vectorises inside a loop (libm's expf/tanhf are scalar calls, several times slower in a
 * loop). Accurate to a few ulp over the whole float range, subnormal results included;
 * ±inf and NaN give what libm gives. Cephes' polynomials; no float-to-int conversion (the
 * exponent is built from the bits of a rounded float), so NaN inputs are well defined. */
#ifndef FL_CPU_VMATH_H
#define FL_CPU_VMATH_H

#include <stdint.h>
#include <string.h>

static inline float fl_vm_bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t fl_vm_float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* e^x. */
static inline float fl_vm_expf(float x)
{
    /* clamp so that the scaling below stays in range; NaN passes through the comparisons */
    float xc = x > 89.0f ? 89.0f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    /* n = round(x / ln 2), held as an integer in the low mantissa bits of `shifted` */
    const float magic = 12582912.0f;   /* 1.5 * 2^23 */
    float shifted = xc * 1.44269504088896341f + magic;
    float n = shifted - magic;
    int32_t ni = (int32_t)(fl_vm_float_to_bits(shifted) - fl_vm_float_to_bits(magic));
    /* r = x - n ln 2 in two parts (the first exact), |r| <= ln 2 / 2 */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    /* p * 2^n in two factors, so that subnormal results round once, at the end */
    int32_t n1 = ni >> 1, n2 = ni - n1;
    float s1 = fl_vm_bits_to_float((uint32_t)(n1 + 127) << 23);
    float s2 = fl_vm_bits_to_float((uint32_t)(n2 + 127) << 23);
    float y = p * s1 * s2;
    y = x > 88.72283935546875f ? __builtin_inff() : y;
    y = x < -103.97208404541015625f ? 0.0f : y;
    return x != x ? x : y;
}

/* tanh x: an odd polynomial near 0, 1 - 2 / (e^2|x| + 1) elsewhere. */
static inline float fl_vm_tanhf(float x)
{
    float ax = x < 0 ? -x : x;
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float e = fl_vm_expf(2.0f * (ax > 10.0f ? 10.0f : ax));
    float big = 1.0f - 2.0f / (e + 1.0f);
    big = x < 0 ? -big : big;
    small = x == 0 ? x : small;   /* tanh(-0) = -0 */
    return ax < 0.625f ? small : (x != x ? x : big);
}

/* 1 / (1 + e^-x), from e^-|x| so that neither side overflows. */
static inline float fl_vm_sigmoidf(float x)
{
    float ax = x < 0 ? -x : x;
    float e = fl_vm_expf(-ax);
    float s = 1.0f / (1.0f + e);
    return x != x ? x : (x >= 0 ? s : e * s);
}

#endif
