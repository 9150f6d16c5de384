# lavaan 0.6-14 Monte Carlo loop for benchmarks/bench_montecarlo.py: simulateData + cfa, timed per
# replication. Usage: Rscript benchmarks/montecarlo_lavaan.R OUT.json REPS_ML REPS_WLSMV
args <- commandArgs(trailingOnly = TRUE)
out <- args[1]; reps_ml <- as.integer(args[2]); reps_w <- as.integer(args[3])
suppressMessages({library(lavaan); library(jsonlite)})
sizes <- c(6, 7, 7, 6, 7)                     # the teacher form: 33 items, 5 factors
items <- paste0("y", seq_len(sum(sizes)))
ends <- cumsum(sizes); starts <- ends - sizes + 1
fac <- paste0("F", 1:5)
model <- paste(sapply(1:5, function(f) paste0(fac[f], " =~ ",
         paste(items[starts[f]:ends[f]], collapse = " + "))), collapse = "\n")
pop <- paste(c(sapply(1:5, function(f) paste0(fac[f], " =~ ",
         paste0("0.7*", items[starts[f]:ends[f]], collapse = " + "))),
         apply(combn(fac, 2), 2, function(p) paste0(p[1], " ~~ 0.3*", p[2]))), collapse = "\n")
set.seed(1)
st_ml <- system.time(for (r in seq_len(reps_ml)) {
  d <- simulateData(pop, sample.nobs = 1000, standardized = TRUE)
  f <- cfa(model, data = d, std.lv = TRUE)
  fitMeasures(f, c("chisq", "cfi", "rmsea", "srmr"))
})
st_w <- system.time(for (r in seq_len(reps_w)) {
  d <- simulateData(pop, sample.nobs = 1000, standardized = TRUE)
  for (v in items) d[[v]] <- cut(d[[v]], c(-Inf, -1.2, -0.3, 0.6, 1.4, Inf), labels = FALSE)
  f <- cfa(model, data = d, std.lv = TRUE, ordered = items)
  fitMeasures(f, c("chisq.scaled", "cfi.scaled", "rmsea.scaled", "srmr"))
})
cpu <- function(st) st[["user.self"]] + st[["sys.self"]]
t_ml <- st_ml[["elapsed"]]; t_w <- st_w[["elapsed"]]
writeLines(toJSON(list(ml_per_rep = t_ml / reps_ml, reps_ml = reps_ml,
                       ml_cpu_per_rep = cpu(st_ml) / reps_ml, wlsmv_cpu_per_rep = cpu(st_w) / reps_w,
                       wlsmv_per_rep = t_w / reps_w, reps_wlsmv = reps_w,
                       lavaan = as.character(packageVersion("lavaan"))),
                  auto_unbox = TRUE, digits = NA), out)
