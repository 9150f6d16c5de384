# Times lavaan 0.6-14 on the benchmark tasks of compare_lavaan.py (same CSV files, same calls as
# shared/refs/R/g_timing.R). Usage: Rscript benchmarks/lavaan_timing.R OUT.json REPS [fiml]
# FIML with 10% MCAR is timed only when "fiml" is given: lavaan needs minutes for it.
args <- commandArgs(trailingOnly = TRUE)
out <- args[1]; reps <- as.integer(args[2]); with_fiml <- length(args) > 2 && args[3] == "fiml"
suppressMessages({library(lavaan); library(jsonlite)})
cont <- read.csv("benchmarks/data/sim_5f40i_n5000_continuous.csv")
ord <- read.csv("benchmarks/data/sim_5f40i_n5000_ordinal5.csv")
items <- paste0("y", 1:40)
model <- paste(sapply(1:5, function(f) paste0("F", f, " =~ ",
         paste(items[((f - 1) * 8 + 1):(f * 8)], collapse = " + "))), collapse = "\n")
set.seed(1)
miss <- cont
for (v in items) miss[runif(nrow(miss)) < 0.10, v] <- NA
# CPU seconds (user + system), as compare_lavaan.py's time.process_time()
cpu <- function(expr) { t <- system.time(eval(expr)); t[["user.self"]] + t[["sys.self"]] }
med <- function(expr, n = reps) median(replicate(n, cpu(expr)))
ladder <- quote({
  for (ge in list("", "loadings", c("loadings", "intercepts"),
                  c("loadings", "intercepts", "residuals")))
    cfa(model, data = cont, group = "grp", group.equal = ge)
})
invisible(cfa(model, data = cont))   # warm-up
lad <- med(ladder)
res <- list(
  ml = med(quote(cfa(model, data = cont))),
  ladder_fits = lad,
  ladder_ml = lad,
  mlr = med(quote(cfa(model, data = cont, estimator = "MLR")), max(1, reps %/% 2)),
  wlsmv = med(quote(cfa(model, data = ord, ordered = items)), max(1, reps %/% 2)))
if (with_fiml) res$fiml <- med(quote(cfa(model, data = miss, missing = "ml")), 1)
res$lavaan <- as.character(packageVersion("lavaan"))
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA), out)
