## lavaan 0.6-14 timing anchor for benchmarks/bench_mlr_fiml.py: cfa(missing = "ml") (then with
## estimator = "MLR") on the 40-item, N = 5000 data with 10% MCAR
## (benchmarks/data/sim_5f40i_n5000_mcar10.csv, written by bench_mlr_fiml.py --make-data with numpy
## default_rng(20261125)). One lavaan FIML fit on these 4356 missing-data patterns takes many
## minutes, so each is run once. Run from the worktree root:
##   Rscript benchmarks/lavaan_fiml_timing.R      (writes benchmarks/lavaan_fiml_timing.json)
suppressPackageStartupMessages({library(lavaan); library(jsonlite)})
d <- read.csv("benchmarks/data/sim_5f40i_n5000_mcar10.csv", na.strings = c("", "NA"))
model <- paste(sapply(1:5, function(k) paste0("F", k, " =~ ", paste0("y", (8 * k - 7):(8 * k), collapse = " + "))),
               collapse = "\n")
out <- list(lavaan = as.character(packageVersion("lavaan")), R = R.version.string,
            note = "elapsed seconds of one cfa() call; machine shared with other jobs")
save <- function() writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
                              "benchmarks/lavaan_fiml_timing.json")
t <- system.time(f <- cfa(model, data = d, missing = "ml"))[["elapsed"]]
out$fiml_ml_median <- t
out$fiml_fit <- as.list(fitMeasures(f, c("chisq", "df", "cfi", "rmsea", "srmr", "logl", "cfi.robust", "rmsea.robust")))
pt <- parTable(f)
out$fiml_se_first10 <- head(pt$se[pt$free > 0], 10)
save()
t <- system.time(fr <- cfa(model, data = d, missing = "ml", estimator = "MLR"))[["elapsed"]]
out$fiml_mlr_median <- t
out$fiml_mlr_fit <- as.list(fitMeasures(fr, c("chisq.scaled", "chisq.scaling.factor", "cfi.robust", "rmsea.robust")))
save()
