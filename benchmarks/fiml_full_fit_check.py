"""One-off check: a full FIML fit of the 40-item model on the 10% MCAR data with scipy's L-BFGS-B on
FIMLObjective (stand-in for the engine's optimiser); prints time and chisq to compare with lavaan
(772.6076, see bench_robust.md). Run: /work/venv/bin/python benchmarks/fiml_full_fit_check.py
"""
import sys, time, numpy as np, pandas as pd
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / 'benchmarks'))
from bench_robust import semopy_rows
from tests._robust_cfa import TinyCFA
from instrument.estimate.fiml import FIMLObjective, missing_patterns, em_saturated, fiml_loglik
from scipy.optimize import minimize
df = pd.read_csv(ROOT / 'benchmarks' / 'data' / 'sim_5f40i_n5000_continuous.csv'); ov=[f'y{i}' for i in range(1,41)]
X = df[ov].to_numpy(float); rng=np.random.default_rng(20261125); Xm=X.copy(); Xm[rng.random(X.shape)<0.10]=np.nan
rows = semopy_rows(df[ov], ov)
m = TinyCFA(rows + [{"lhs": v, "op": "~1", "rhs": "", "est": float(np.nanmean(Xm[:, j])), "free": True} for j, v in enumerate(ov)], ov, meanstructure=True)
t0=time.time(); pat = missing_patterns(Xm); obj = FIMLObjective(lambda x: [m.implied(x)], lambda x: [m.delta(x)], [pat])
bounds = [(1e-3, None) if (r["op"] == "~~" and r["lhs"] == r["rhs"]) else (None, None) for r in m.free_rows]
res = minimize(obj.value, m.x0, jac=obj.gradient, method="L-BFGS-B", bounds=bounds, options={"maxiter": 1000, "gtol": 1e-9, "ftol": 1e-15, "maxcor": 30})
t1=time.time()
h1 = em_saturated(pat); t2=time.time()
s, mu = m.implied(res.x)
chisq = 2*(h1.logl - fiml_loglik(pat, s, mu))
print(f"fit {t1-t0:.1f} s ({res.nit} it, {res.nfev} evals, {res.message}); EM {t2-t1:.1f} s ({h1.iterations} it); chisq {chisq:.4f} (lavaan 772.6076)", flush=True)
