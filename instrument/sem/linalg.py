"""Dense-or-sparse products: the Jacobians of factor models (Delta) and the matrices built from
them are mostly zeros, so their products run as sparse products when that is cheaper."""
from __future__ import annotations

import numpy as np
from scipy import sparse

__all__ = ["SPARSE_DENSITY", "sparse_if_sparse", "gram"]

# A Jacobian Delta of a factor model is mostly zeros (a correlation depends on two loadings
# and a factor covariance): below this share of nonzeros products run as sparse products.
SPARSE_DENSITY = 0.05


def sparse_if_sparse(M: np.ndarray):
    """``M`` as a CSR array when at most `SPARSE_DENSITY` of it is nonzero, else ``M``; either
    multiplies dense arrays with ``@`` (a sparse product returns a dense array)."""
    M = np.asarray(M, float)
    if M.ndim != 2:
        return M
    nz = M != 0
    idx = np.flatnonzero(nz)                 # row-major positions of the nonzeros
    if len(idx) > SPARSE_DENSITY * M.size:
        return M
    indptr = np.zeros(M.shape[0] + 1, dtype=np.int64)
    np.cumsum(nz.sum(axis=1), out=indptr[1:])
    return sparse.csr_array((M.ravel()[idx], idx % M.shape[1], indptr), shape=M.shape)


def gram(X) -> np.ndarray:
    """``X' X`` as a dense array (a sparse product when X is sparse or mostly zeros, else a
    symmetric rank-k product)."""
    Xs = X if sparse.issparse(X) else sparse_if_sparse(X)
    if not sparse.issparse(Xs):
        return Xs.T @ Xs
    return (Xs.T @ Xs).toarray()
