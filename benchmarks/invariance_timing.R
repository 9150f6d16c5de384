# lavaan/semTools side of benchmarks/invariance_timing.py: the ordinal invariance ladder
# (configural, thresholds, metric, scalar, strict; Wu & Estabrook 2016 identification, theta
# parameterization, std.lv) by WLSMV with pairwise missing data, and lavTestLRT between adjacent
# steps. Prints CPU seconds (user + system) as JSON.
# Usage: Rscript invariance_timing.R DATA.csv MODEL.lav GROUP
suppressMessages({library(lavaan); library(semTools)})
a <- commandArgs(trailingOnly = TRUE)
d <- read.csv(a[1]); model <- paste(readLines(a[2]), collapse = "\n"); grp <- a[3]
items <- setdiff(names(d), grp)
steps <- list(configural = "configural", thresholds = "thresholds",
              metric = c("thresholds", "loadings"),
              scalar = c("thresholds", "loadings", "intercepts"),
              strict = c("thresholds", "loadings", "intercepts", "residuals"))
t0 <- proc.time()
fits <- lapply(steps, function(eq) {
  syn <- measEq.syntax(model, data = d, ordered = items, group = grp,
                       parameterization = "theta", ID.fac = "std.lv",
                       ID.cat = "Wu.Estabrook.2016",
                       group.equal = if (identical(eq, "configural")) "" else eq)
  cfa(as.character(syn), data = d, ordered = items, group = grp, estimator = "WLSMV",
      parameterization = "theta", missing = "pairwise")
})
t1 <- proc.time()
lrt <- do.call(lavTestLRT, c(unname(fits), list(method = "satorra.2000")))
t2 <- proc.time()
cpu <- function(a, b) unname((b - a)[1] + (b - a)[2])
cat(sprintf('{"fits": %.3f, "lrt": %.3f, "total": %.3f, "chisq.diff": [%s]}\n',
            cpu(t0, t1), cpu(t1, t2), cpu(t0, t2),
            paste(sprintf("%.4f", lrt[["Chisq diff"]][-1]), collapse = ", ")))
