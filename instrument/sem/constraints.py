"""Equality constraints (``==``) and defined parameters (``:=``) of lavaan model syntax.

An expression is R arithmetic over parameter labels (and earlier defined names): numbers,
``+ - * / ^``, parentheses and the functions in `FUNCTIONS`. `Expression` compiles one safely
(Python's ``ast`` checked against a whitelist of nodes) and evaluates it with numpy and no
builtins.

Linear equality constraints are removed by reparametrisation: with the constraints written
``R u = r`` over the label classes u (rows sharing a label are one class), Gauss-Jordan
elimination with partial pivoting picks one class per constraint to express through the others,
``u = K1 x + k1``; the free table rows are then ``theta = K0 (K1 x + k1)``, K0 the one-hot map of
rows to classes (lavaan's ``lav_constraints_R2K`` null-space reparametrisation, with a basis of
unit columns for the classes that stay free). Standard errors of the free rows are the diagonal
of ``K V K'`` (V the covariance of x) and of a defined parameter ``d(theta)`` the delta method
``J V J'`` with ``J = d d / d x`` (lavaan ``lav_model_vcov_se``, ``def.function`` Jacobian).
Nonlinear equality constraints are linearised at the current point and the fit is repeated
from its solution until the constraints hold (sequential linearisation; at the fixed point the
gradient is orthogonal to the constraint surface, the first-order condition of the constrained
optimum). K at the solution spans the null space of the constraint Jacobian, so ``K (K' I K)^-1
K'`` equals lavaan's inverse of the information augmented with the constraint Jacobian
(``lav_model_information_augment_invert``).
"""
from __future__ import annotations

import ast
import re
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["Expression", "ConstraintError", "FUNCTIONS", "parse_expression", "linear_reduction",
           "is_linear", "DefinedParameters", "check_statement_labels"]

FUNCTIONS: dict[str, Callable] = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs,
                                  "sin": np.sin, "cos": np.cos, "tan": np.tan, "log10": np.log10}
# Jacobian of expressions: central differences with Richardson extrapolation (step and levels)
_JAC_STEP = 1e-3
_JAC_LEVELS = 4
# relative tolerance for calling a constraint linear (Jacobian equal at two random points)
_LINEAR_TOL = 1e-7


class ConstraintError(ValueError):
    """An ``==`` or ``:=`` statement that cannot be used (unknown label, nonlinear, ...)."""


_NAME_TOKEN = re.compile(r"(?<![\w.])(?:[A-Za-z_]|\.[A-Za-z_])[A-Za-z0-9_.]*")
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Call, ast.Load,
            ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


class Expression:
    """A compiled R arithmetic expression over parameter labels.

    Attributes
    ----------
    text : str
        The expression as lavaan prints it (spaces removed).
    names : tuple of str
        Labels it reads, in order of first appearance.
    """

    def __init__(self, text: str, names: tuple, code):
        self.text, self.names, self._code = text, tuple(names), code

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def evaluate(self, values: Mapping[str, float]) -> float:
        """Value for ``values`` (label -> number; every name of the expression)."""
        env = {f"_v{k}": values[n] for k, n in enumerate(self.names)}
        return float(eval(self._code, {"__builtins__": {}, **FUNCTIONS}, env))  # noqa: S307


def parse_expression(text: str) -> Expression:
    """Compile an R arithmetic expression (``a*b``, ``c - 1.2*d``, ``exp(c) - d^2``).

    Raises
    ------
    ConstraintError
        For anything other than numbers, labels, ``+ - * / ^``, parentheses and `FUNCTIONS`.
    """
    src = text.strip()
    if not src:
        raise ConstraintError("empty expression")
    # R names may contain dots (.p3.), Python names may not: the code reads _v0, _v1, ...
    names: list[str] = []

    def _sub(m):
        name = m.group(0)
        if name in FUNCTIONS and src[m.end():].lstrip().startswith("("):
            return name
        if name not in names:
            names.append(name)
        return f"_v{names.index(name)}"

    py = _NAME_TOKEN.sub(_sub, src).replace("^", "**")
    try:
        tree = ast.parse(py, mode="eval")
    except SyntaxError as e:
        raise ConstraintError(f"cannot read the expression {src!r}") from e
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ConstraintError(f"{src!r}: only numbers, labels, + - * / ^ and the functions "
                                  f"{', '.join(FUNCTIONS)} are allowed")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS \
                    or node.keywords or len(node.args) != 1:
                raise ConstraintError(f"{src!r}: unknown function call (allowed: "
                                      f"{', '.join(FUNCTIONS)} with one argument)")
        elif isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise ConstraintError(f"{src!r}: {node.value!r} is not a number")
    code = compile(tree, "<expression>", "eval")
    return Expression("".join(src.split()), tuple(names), code)


def _gradient(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Gradient of a scalar function by central differences with Richardson extrapolation."""
    x = np.asarray(x, float)
    g = np.zeros(len(x))
    for i in range(len(x)):
        h = _JAC_STEP * max(1.0, abs(x[i]))
        table = []
        for lev in range(_JAC_LEVELS):
            e = np.zeros(len(x))
            e[i] = h / 2 ** lev
            table.append((f(x + e) - f(x - e)) / (2 * e[i]))
        for k in range(1, _JAC_LEVELS):
            table = [(4 ** k * table[j + 1] - table[j]) / (4 ** k - 1)
                     for j in range(len(table) - 1)]
        g[i] = table[0]
    return g


def _affine(lhs: Expression, rhs: Expression, free: Sequence[str],
            fixed_values: Mapping[str, float]) -> tuple[bool, np.ndarray, float]:
    """Whether ``h = lhs - rhs`` is affine in the `free` names, with its gradient and h(0).

    The gradient is taken at two random points; h is affine when they agree and h(p) equals
    h(0) + g'p at both (lavaan ``lav_constraints_linear_idx`` also compares Jacobians at random
    points)."""
    def h(v):
        vals = dict(fixed_values)
        vals.update(zip(free, v))
        return lhs.evaluate(vals) - rhs.evaluate(vals)

    rng = np.random.default_rng(len(free))
    pts = [rng.uniform(0.5, 1.5, len(free)) for _ in range(2)]
    try:
        grads = [_gradient(h, p) for p in pts]
        h0 = h(np.zeros(len(free)))
        lin = (np.allclose(grads[0], grads[1], rtol=_LINEAR_TOL, atol=_LINEAR_TOL)
               and all(abs(h(p) - (h0 + g @ p)) <= _LINEAR_TOL * max(1.0, abs(h(p)))
                       for p, g in zip(pts, grads)))
    except (ZeroDivisionError, OverflowError, ValueError):
        return False, np.zeros(len(free)), float("nan")
    return bool(lin), np.round(grads[0], 10), h0


def linear_reduction(constraints: Sequence[tuple[Expression, Expression]],
                     class_of_label: Mapping[str, int], nclass: int,
                     fixed_values: Mapping[str, float], *,
                     point: Mapping[str, float] | None = None,
                     pivots: Sequence[int] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, list, list]:
    """Remove equality constraints over label classes: ``u = K1 x + k1``.

    Parameters
    ----------
    constraints : sequence of (lhs, rhs)
        ``lhs == rhs`` statements.
    class_of_label : mapping
        Label -> index of its class of free parameters (0..nclass-1).
    nclass : int
    fixed_values : mapping
        Label -> value of labels on fixed rows (constants in the constraints).
    point : mapping, optional
        Label -> value at which nonlinear constraints are linearised:
        ``h(p) + g(p)'(u - p) = 0`` with g the gradient of h = lhs - rhs (needed when a
        constraint is nonlinear).
    pivots : sequence of int, optional
        The classes to eliminate (those of an earlier call, so that x keeps its meaning);
        by default chosen by Gauss-Jordan elimination with partial pivoting, columns in order.

    Returns
    -------
    (K1, k1, kept, pivots)
        K1 (nclass x nx), k1 (nclass,), the classes that stay free (x's columns) and the
        eliminated classes.

    Raises
    ------
    ConstraintError
        For contradicting constraints, or when the given pivots no longer have full rank.
    """
    rows, rhs = [], []
    for lhs_e, rhs_e in constraints:
        names = [n for n in dict.fromkeys(lhs_e.names + rhs_e.names)]
        free = [n for n in names if n in class_of_label]
        lin, grad, h0 = _affine(lhs_e, rhs_e, free, fixed_values)
        if not lin:
            if point is None:
                raise ConstraintError(f"{lhs_e.text} == {rhs_e.text} is nonlinear: a point to "
                                      "linearise it at is needed")
            p0 = np.array([point[n] for n in free], float)

            def h(v, _l=lhs_e, _r=rhs_e, _free=free):
                vals = dict(fixed_values)
                vals.update(zip(_free, v))
                return _l.evaluate(vals) - _r.evaluate(vals)

            grad = _gradient(h, p0)
            h0 = h(p0) - float(grad @ p0)
        a = np.zeros(nclass)
        for n, gi in zip(free, grad):
            a[class_of_label[n]] += gi
        rows.append(a)
        rhs.append(-h0)
    R = np.array(rows, float).reshape(len(rows), nclass)
    r = np.array(rhs, float)
    # Gauss-Jordan elimination with partial pivoting, the given pivot columns first
    order = list(pivots) + [c for c in range(nclass) if c not in set(pivots)] if pivots \
        is not None else list(range(nclass))
    chosen: list[int] = []
    A = np.hstack([R, r[:, None]])
    row = 0
    scale = max(1.0, float(np.abs(R).max())) if R.size else 1.0
    for col in order:
        if row >= len(A):
            break
        piv = row + int(np.argmax(np.abs(A[row:, col])))
        if abs(A[piv, col]) <= 1e-10 * scale:
            continue
        A[[row, piv]] = A[[piv, row]]
        A[row] /= A[row, col]
        for k in range(len(A)):
            if k != row:
                A[k] -= A[k, col] * A[row]
        chosen.append(col)
        row += 1
    for k in range(row, len(A)):
        if abs(A[k, -1]) > 1e-8 * max(1.0, float(np.abs(r).max())):
            raise ConstraintError("the equality constraints contradict each other")
    if pivots is not None and sorted(chosen) != sorted(pivots):
        raise ConstraintError("the Jacobian of the equality constraints lost rank during "
                              "estimation")
    kept = [c for c in range(nclass) if c not in set(chosen)]
    K1 = np.zeros((nclass, len(kept)))
    k1 = np.zeros(nclass)
    for j, c in enumerate(kept):
        K1[c, j] = 1.0
    for k, c in enumerate(chosen):
        K1[c, :] = -A[k, kept]
        k1[c] = A[k, -1]
    return K1, k1, kept, chosen


def is_linear(lhs: Expression, rhs: Expression) -> bool:
    """Whether ``lhs == rhs`` is linear in its names (`_affine`)."""
    return _affine(lhs, rhs, list(dict.fromkeys(lhs.names + rhs.names)), {})[0]


class DefinedParameters:
    """The ``:=`` parameters of a model: values and delta-method covariance.

    Parameters
    ----------
    defined : sequence of (name, Expression, line)
    label_rows : mapping
        Label -> index of one table row carrying it (labels of rows, user or ``.pN.``).
    """

    def __init__(self, defined: Sequence[tuple[str, Expression, int]],
                 label_rows: Mapping[str, int]):
        self.defined = list(defined)
        self.label_rows = dict(label_rows)
        used = {n for _, e, _ in self.defined for n in e.names if n in self.label_rows}
        self.rows_used = sorted({self.label_rows[n] for n in used})

    def values_from_rows(self, row_values: np.ndarray) -> np.ndarray:
        """Defined values for the values of `rows_used`."""
        vals = {n: row_values[self.rows_used.index(r)] for n, r in self.label_rows.items()
                if r in self.rows_used}
        out = []
        for name, expr, _ in self.defined:
            v = expr.evaluate(vals)
            vals[name] = v
            out.append(v)
        return np.array(out, float)

    def values(self, table_values: np.ndarray) -> np.ndarray:
        """Defined values at the table values (every row)."""
        return self.values_from_rows(np.asarray(table_values, float)[self.rows_used])

    def jacobian_rows(self, table_values: np.ndarray) -> np.ndarray:
        """d defined / d (values of `rows_used`), shape (n_defined, len(rows_used))."""
        v0 = np.asarray(table_values, float)[self.rows_used]
        J = np.zeros((len(self.defined), len(v0)))
        for k in range(len(self.defined)):
            J[k] = _gradient(lambda v, _k=k: self.values_from_rows(v)[_k], v0)
        return J


def check_statement_labels(statements, labels: set) -> None:
    """Check that the ``==`` and ``:=`` statements (syntax rows with ``lhs op rhs line``) only
    use labels of the table, or names defined by an earlier ``:=``.

    Raises
    ------
    ConstraintError
        Naming the syntax line, the statement and the unknown names.
    """
    known = set(labels) - {""}
    for r in statements:
        texts = (r.lhs, r.rhs) if r.op == "==" else (r.rhs,)
        names = [n for t in texts for n in parse_expression(t).names]
        unknown = [n for n in dict.fromkeys(names) if n not in known]
        if r.op == "==":
            defined = [n for n in dict.fromkeys(names) if n in _defined_names(statements)]
            if defined:
                raise ConstraintError(f"model syntax line {r.line}: {r.lhs} == {r.rhs} uses the "
                                      f"defined parameter(s) {defined}; constraints on defined "
                                      "parameters are not implemented")
        if unknown:
            raise ConstraintError(f"model syntax line {r.line}: {r.lhs} {r.op} {r.rhs} uses "
                                  f"unknown label(s) {unknown} (labels of the model: "
                                  f"{sorted(known)[:12]})")
        if r.op == ":=":
            if r.lhs in known:
                raise ConstraintError(f"model syntax line {r.line}: {r.lhs} := {r.rhs} defines "
                                      "a name that is already a label")
            known.add(r.lhs)


def _defined_names(statements) -> set:
    return {r.lhs for r in statements if r.op == ":="}
