## lavaan 0.6-14 timing anchor for benchmarks/bench_mlr_fiml.py: cfa(missing = "ml") on the 40-item,
## N = 5000 data with 10% MCAR (benchmarks/data/sim_5f40i_n5000_mcar10.csv, written by
## bench_mlr_fiml.py --make-data with numpy default_rng(20261125)). Run from the worktree root:
##   Rscript benchmarks/lavaan_fiml_timing.R > benchmarks/lavaan_fiml_timing.json
suppressPackageStartupMessages({library(lavaan); library(jsonlite)})
d <- read.csv("benchmarks/data/sim_5f40i_n5000_mcar10.csv", na.strings = c("", "NA"))
model <- paste(sapply(1:5, function(k) paste0("F", k, " =~ ", paste0("y", (8 * k - 7):(8 * k), collapse = " + "))),
               collapse = "\n")
reps <- as.integer(Sys.getenv("REPS", "1"))   # one lavaan FIML fit here takes minutes
ts <- numeric(reps); tsr <- numeric(reps)
for (i in 1:reps) ts[i] <- system.time(f <- cfa(model, data = d, missing = "ml"))[["elapsed"]]
for (i in 1:reps) tsr[i] <- system.time(fr <- cfa(model, data = d, missing = "ml", estimator = "MLR"))[["elapsed"]]
fm <- fitMeasures(f, c("chisq", "df", "cfi", "rmsea", "srmr", "logl", "cfi.robust", "rmsea.robust"))
fmr <- fitMeasures(fr, c("chisq.scaled", "chisq.scaling.factor", "cfi.robust", "rmsea.robust"))
cat(toJSON(list(lavaan = as.character(packageVersion("lavaan")), R = R.version.string,
                fiml_ml_seconds = ts, fiml_ml_median = median(ts),
                fiml_mlr_seconds = tsr, fiml_mlr_median = median(tsr),
                fiml_fit = as.list(fm), fiml_mlr_fit = as.list(fmr),
                se_first = head(parTable(f)$se[parTable(f)$free > 0], 10)),
           auto_unbox = TRUE, digits = NA, pretty = TRUE))
