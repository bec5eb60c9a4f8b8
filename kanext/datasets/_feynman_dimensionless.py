"""The dimensionless forms of the KAN paper's Table 3 (Liu et al. 2024,
"KAN: Kolmogorov-Arnold Networks", Section 3.3), behind
``get_feynman_dataset(name, dimensionless=True)``.

The paper rewrites each Table-3 equation in dimensionless variables (ratios
of the original ones) so that few variables remain, e.g. I.27.6
1/(1/d1 + n/d2) becomes 1/(1 + a*b) with a = n, b = d1/d2. The formulas
here are written from the equations; the paper does not list ranges for the
dimensionless variables, so the ranges are chosen here: boxes of size about
1 (as pykan's), keeping every formula finite and real (denominators away
from 0, arcsin arguments inside [-1, 1], sqrt arguments >= 0), angles over a
full period unless the formula needs less.

Entry: (name, symbols, sympy expression, torch function, ranges), the same
conventions as ``_feynman_equations.EQUATIONS``: symbols space separated in
input-column order, one (low, high) per variable. The sympy and torch forms
are written independently; tests check that they agree.
"""
from __future__ import annotations

import math

from torch import asin, cos, exp, log, sin, sqrt

TWO_PI = 2 * math.pi

DIMENSIONLESS = [
    # name, variables, formula, torch, ranges
    ("I.6.20", "theta sigma", "exp(-theta**2/(2*sigma**2))/sqrt(2*pi*sigma**2)",
     lambda th, s: exp(-0.5 * (th / s) ** 2) / (math.sqrt(TWO_PI) * s), [(-1, 1), (0.5, 2)]),
    ("I.6.20b", "theta theta1 sigma", "exp(-(theta - theta1)**2/(2*sigma**2))/sqrt(2*pi*sigma**2)",
     lambda th, th1, s: exp(-0.5 * ((th - th1) / s) ** 2) / (math.sqrt(TWO_PI) * s),
     [(-1.5, 1.5), (-1.5, 1.5), (0.5, 2)]),
    # a = G m1 m2 / x1^2 scaled; distances in units of x1 (so the first coordinate difference is b - 1)
    ("I.9.18", "a b c d e f", "a/((b - 1)**2 + (c - d)**2 + (e - f)**2)",
     lambda a, b, c, d, e, f: a / ((b - 1) ** 2 + (c - d) ** 2 + (e - f) ** 2),
     [(-1, 1), (-1, 0), (-1, -0.5), (0.5, 1), (-1, -0.5), (0.5, 1)]),
    ("I.12.11", "a theta", "1 + a*sin(theta)", lambda a, th: 1 + a * sin(th), [(-1, 1), (0, TWO_PI)]),
    ("I.13.12", "a b", "a*(1/b - 1)", lambda a, b: a * (1 / b - 1), [(-1, 1), (0.5, 2)]),
    ("I.15.3x", "a b", "(1 - a)/sqrt(1 - b**2)", lambda a, b: (1 - a) / sqrt(1 - b * b), [(-1, 1), (-0.9, 0.9)]),
    ("I.16.6", "a b", "(a + b)/(1 + a*b)", lambda a, b: (a + b) / (1 + a * b), [(-0.8, 0.8), (-0.8, 0.8)]),
    ("I.18.4", "a b", "(1 + a*b)/(1 + a)", lambda a, b: (1 + a * b) / (1 + a), [(0.5, 2), (-1, 1)]),
    ("I.26.2", "n theta2", "asin(n*sin(theta2))", lambda n, th2: asin(n * sin(th2)), [(0, 0.99), (0, TWO_PI)]),
    ("I.27.6", "a b", "1/(1 + a*b)", lambda a, b: 1 / (1 + a * b), [(0.5, 2), (0.5, 2)]),
    ("I.29.16", "a theta1 theta2", "sqrt(1 + a**2 - 2*a*cos(theta1 - theta2))",
     lambda a, t1, t2: sqrt(1 + a * a - 2 * a * cos(t1 - t2)), [(0, 0.5), (0, TWO_PI), (0, TWO_PI)]),
    ("I.30.3", "n theta", "sin(n*theta/2)**2/sin(theta/2)**2",
     lambda n, th: (sin(0.5 * n * th) / sin(0.5 * th)) ** 2, [(0, 4), (0.4 * math.pi, 1.6 * math.pi)]),
    ("I.30.5", "a n", "asin(a/n)", lambda a, n: asin(a / n), [(0, 1), (1, 2)]),
    ("I.37.4", "a delta", "1 + a + 2*sqrt(a)*cos(delta)",
     lambda a, d: 1 + a + 2 * sqrt(a) * cos(d), [(0.1, 1), (0, TWO_PI)]),
    ("I.40.1", "n_0 a", "n_0*exp(-a)", lambda n0, a: n0 * exp(-a), [(0, 1), (-1, 1)]),
    ("I.44.4", "n a", "n*log(a)", lambda n, a: n * log(a), [(0, 1), (0.5, 2)]),
    ("I.50.26", "a alpha", "cos(a) + alpha*cos(a)**2",
     lambda a, al: cos(a) + al * cos(a) ** 2, [(0, TWO_PI), (-1, 1)]),
    ("II.2.42", "a b", "(a - 1)*b", lambda a, b: (a - 1) * b, [(0, 2), (-1, 1)]),
    ("II.6.15a", "a b c", "c*sqrt(a**2 + b**2)/(4*pi)",
     lambda a, b, c: c * sqrt(a * a + b * b) / (2 * TWO_PI), [(-1, 1), (-1, 1), (-1, 1)]),
    ("II.11.17", "n_0 a theta", "n_0*(1 + a*cos(theta))",
     lambda n0, a, th: n0 * (1 + a * cos(th)), [(0, 1), (-1, 1), (0, TWO_PI)]),
    ("II.11.27", "n alpha", "n*alpha/(1 - n*alpha/3)",
     lambda n, al: n * al / (1 - n * al / 3), [(0, 1), (0, 1)]),
    ("II.35.18", "n_0 a", "n_0/(exp(a) + exp(-a))", lambda n0, a: n0 / (exp(a) + exp(-a)), [(0, 1), (-1, 1)]),
    ("II.36.38", "a alpha b", "a + alpha*b", lambda a, al, b: a + al * b, [(-1, 1), (-1, 1), (-1, 1)]),
    ("II.38.3", "a b", "a/b", lambda a, b: a / b, [(0, 1), (0.5, 2)]),
    # b - c = (omega - omega_0) t, kept away from the removable 0/0 at b = c
    ("III.9.52", "a b c", "a*sin((b - c)/2)**2/((b - c)/2)**2",
     lambda a, b, c: a * (sin(0.5 * (b - c)) / (0.5 * (b - c))) ** 2, [(0, 1), (1, 2), (-1, 0)]),
    ("III.10.19", "a b", "sqrt(1 + a**2 + b**2)", lambda a, b: sqrt(1 + a * a + b * b), [(-1, 1), (-1, 1)]),
    ("III.17.37", "alpha beta theta", "beta*(1 + alpha*cos(theta))",
     lambda al, be, th: be * (1 + al * cos(th)), [(-1, 1), (0, 1), (0, TWO_PI)]),
]
