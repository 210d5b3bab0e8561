"""Vector math in IR: `<W x float>` exp, log, log1p, tanh and erf without libm.

LLVM lowers `llvm.exp.v16f32` (and log, and libm calls on vectors) to sixteen scalar calls
(measured 3.5 us for a 128x10 softmax against 2 us with this), so the f32 vector forms are
computed here with polynomials. Scalars and f64 keep LLVM's intrinsics / libm. Maximum
errors below are against correctly rounded results, as measured by
tests/runtime/test_kernels_vecmath.py (tens of thousands of inputs per function: every binade
including denormals, huge values, +-inf, NaN, -0.0), which checks each bound plus one ulp:

exp    n = roundeven(x * log2 e);  r = x - n*C1 - n*C2   (Cody-Waite split of ln 2)
       exp(r) ~ 1 + r + r^2 * P(r)                      (Cephes expf polynomial)
       exp(x) = exp(r) * 2^n1 * 2^n2, n1 = n >> 1, n2 = n - n1 (two scalings reach denormals)
       1 ulp on [-103, 88.7]; x > 88.72 -> +inf, x < -103.98 -> +0, exp(-inf) = 0.
log    x = m * 2^e with m in [sqrt(1/2), sqrt(2)) (denormals scaled by 2^23 first);
       log(x) = f - f^2/2 + f^3 * P(f) + e*ln 2, f = m - 1 (Cephes logf polynomial, ln 2
       split in two). 1 ulp; log(0) = -inf, log(x < 0) = NaN, log(inf) = inf.
log1p  u = 1 + x; log1p(x) = x if u == 1, else log(u) * x / (u - 1) (the rounding of u is
       compensated). 2 ulp; log1p(-1) = -inf, log1p(inf) = inf, x < -1 -> NaN.
tanh   |x| < 0.625: x + x^3 * P(x^2) (Cephes tanhf); else sign(x) * (1 - 2/(exp(2|x|) + 1));
       1 ulp; tanh(+-0) = +-0, tanh(+-inf) = +-1.
erf    |x| <= 1: x * P(x^2) (degree 6, minimax fit of erf(x)/x: relative error 1.2e-9);
       1 < |x| < 4: 1 - exp(-x^2) * Q(1/x) (degree 9, minimax fit of erfc(x)*exp(x^2)
       over [1, 4]: relative error 1.5e-8); |x| >= 4: +-1 (erf rounds to 1 there).
       2 ulp; erf(+-0) = +-0, erf(+-inf) = +-1.
"""
from __future__ import annotations

import llvmlite.ir as ir

from . import helpers as h

_LOG2E = 1.44269504088896341
_C1, _C2 = 0.693359375, -2.12194440e-4
_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
      5.0000001201e-1)
_HI, _LO = 88.72283935546875, -103.97282409667969


def exp_f32_vector(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    t = x.type
    c = lambda v: h.const_like(t, v)  # noqa: E731
    it = h.with_element(t, h.I32)
    xc = h.intrinsic(b, "minnum", [h.intrinsic(b, "maxnum", [x, c(-104.0)]), c(89.0)])
    n = h.intrinsic(b, "roundeven", [b.fmul(xc, c(_LOG2E))])
    r = b.fsub(b.fsub(xc, b.fmul(n, c(_C1))), b.fmul(n, c(_C2)))
    fma = lambda p, q, s: h.intrinsic(b, "fma", [p, q, s])  # noqa: E731
    y = c(_P[0])
    for coeff in _P[1:]:
        y = fma(y, r, c(coeff))
    y = fma(y, b.fmul(r, r), b.fadd(r, c(1.0)))
    k = b.fptosi(n, it)
    k1 = b.ashr(k, h.const_like(it, 1))
    k2 = b.sub(k, k1)

    def pow2(e):
        return b.bitcast(b.shl(b.add(e, h.const_like(it, 127)), h.const_like(it, 23)), t)
    result = b.fmul(b.fmul(y, pow2(k1)), pow2(k2))
    result = b.select(b.fcmp_ordered(">", x, c(_HI)), c(float("inf")), result)
    result = b.select(b.fcmp_ordered("<", x, c(_LO)), c(0.0), result)
    return b.select(b.fcmp_unordered("uno", x, x), x, result)


def is_f32_vector(x: ir.Value) -> bool:
    return isinstance(x.type, ir.VectorType) and isinstance(x.type.element, ir.FloatType)


def _consts(t):
    return lambda v: h.const_like(t, v)


def _poly(b, x, coeffs):
    """Horner with fma: coeffs highest degree first."""
    y = h.const_like(x.type, coeffs[0])
    for c in coeffs[1:]:
        y = h.intrinsic(b, "fma", [y, x, h.const_like(x.type, c)])
    return y


_LOG_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
          1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
          3.3333331174e-1)
_SQRTHF = 0.707106781186547524
_MIN_NORMAL = 1.1754943508222875e-38


def log_f32_vector(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    t = x.type
    c = _consts(t)
    it = h.with_element(t, h.I32)
    ci = lambda v: h.const_like(it, v)  # noqa: E731
    tiny = b.fcmp_ordered("<", x, c(_MIN_NORMAL))
    xs = b.select(tiny, b.fmul(x, c(8388608.0)), x)          # denormals: * 2^23
    bits = b.bitcast(xs, it)
    e = b.sub(b.and_(b.lshr(bits, ci(23)), ci(0xFF)), ci(126))
    e = b.select(tiny, b.sub(e, ci(23)), e)
    m = b.bitcast(b.or_(b.and_(bits, ci(0x807FFFFF)), ci(0x3F000000)), t)   # [0.5, 1)
    low = b.fcmp_ordered("<", m, c(_SQRTHF))
    e = b.select(low, b.sub(e, ci(1)), e)
    f = b.fsub(b.select(low, b.fadd(m, m), m), c(1.0))
    fe = b.sitofp(e, t)
    z = b.fmul(f, f)
    y = b.fmul(b.fmul(_poly(b, f, _LOG_P), f), z)
    y = h.intrinsic(b, "fma", [fe, c(-2.12194440e-4), y])
    y = h.intrinsic(b, "fma", [z, c(-0.5), y])
    r = b.fadd(f, y)
    r = h.intrinsic(b, "fma", [fe, c(0.693359375), r])
    r = b.select(b.fcmp_ordered("==", x, c(float("inf"))), x, r)
    r = b.select(b.fcmp_ordered("==", x, c(0.0)), c(float("-inf")), r)
    r = b.select(b.fcmp_ordered("<", x, c(0.0)), c(float("nan")), r)
    return b.select(b.fcmp_unordered("uno", x, x), x, r)


def log1p_f32_vector(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    t = x.type
    c = _consts(t)
    u = b.fadd(x, c(1.0))
    d = b.fsub(u, c(1.0))
    r = b.fmul(log_f32_vector(b, u), b.fdiv(x, d))
    r = b.select(b.fcmp_ordered("==", d, c(0.0)), x, r)        # 1 + x rounds to 1
    r = b.select(b.fcmp_ordered("==", x, c(float("inf"))), x, r)
    r = b.select(b.fcmp_ordered("==", x, c(-1.0)), c(float("-inf")), r)
    r = b.select(b.fcmp_ordered("<", x, c(-1.0)), c(float("nan")), r)
    return b.select(b.fcmp_unordered("uno", x, x), x, r)


_TANH_P = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
           -3.33332819422e-1)


def tanh_f32_vector(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    t = x.type
    c = _consts(t)
    z = h.intrinsic(b, "fabs", [x])
    s = b.fmul(x, x)
    small = h.intrinsic(b, "fma", [b.fmul(_poly(b, s, _TANH_P), s), x, x])
    e = exp_f32_vector(b, b.fadd(z, z))
    big = b.fsub(c(1.0), b.fdiv(c(2.0), b.fadd(e, c(1.0))))
    big = h.intrinsic(b, "copysign", [big, x])
    r = b.select(b.fcmp_ordered("<", z, c(0.625)), small, big)
    r = b.select(b.fcmp_ordered("==", x, c(0.0)), x, r)         # keeps the sign of zero
    return b.select(b.fcmp_unordered("uno", x, x), x, r)


_ERF_P = (7.853788927571064e-05, -0.0008010173726180977, 0.005188325653913967,
          -0.026853810990475915, 0.11283585129111948, -0.3761262582281556, 1.128379165726577)
_ERFC_Q = (0.03071325644850731, -0.17970921099185944, 0.43823254108428955,
           -0.5369394421577454, 0.2383272349834442, 0.23039811849594116,
           -0.3758638799190521, 0.020535951480269432, 0.5617679357528687,
           0.00012107797374483198)


def erf_f32_vector(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    t = x.type
    c = _consts(t)
    z = h.intrinsic(b, "fabs", [x])
    small = b.fmul(x, _poly(b, b.fmul(x, x), _ERF_P))
    zc = h.intrinsic(b, "minnum", [h.intrinsic(b, "maxnum", [z, c(1.0)]), c(4.0)])
    q = _poly(b, b.fdiv(c(1.0), zc), _ERFC_Q)
    tail = b.fsub(c(1.0), b.fmul(exp_f32_vector(b, b.fneg(b.fmul(zc, zc))), q))
    big = h.intrinsic(b, "copysign", [b.select(b.fcmp_ordered(">=", z, c(4.0)), c(1.0), tail),
                                       x])
    r = b.select(b.fcmp_ordered("<=", z, c(1.0)), small, big)
    return b.select(b.fcmp_unordered("uno", x, x), x, r)
