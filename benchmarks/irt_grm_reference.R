# R reference for instrument.irt's graded response model: Bock-Aitkin EM with the same fixed
# quadrature (61 equally spaced nodes on [-6, 6], normal weights), M-step per item by optim(BFGS)
# with the analytic gradient of the expected complete-data log-likelihood; stops when the largest
# parameter change is below 1e-4 (mirt's default TOL). mirt is not available here (no Debian
# package), so this base-R implementation is the R side of the speed comparison.
# Usage: Rscript irt_grm_reference.R DATA.csv OUT.json
suppressMessages(library(jsonlite))
args <- commandArgs(trailingOnly = TRUE)
X <- as.matrix(read.csv(args[1]))
t0 <- proc.time()[[1]]   # user CPU time
N <- nrow(X); I <- ncol(X)
nodes <- seq(-6, 6, length.out = 61); w <- dnorm(nodes); w <- w / sum(w)
K <- apply(X, 2, max, na.rm = TRUE) + 1
probs <- function(a, d) {          # Q x K category probabilities of one item
  Ps <- cbind(1, plogis(outer(nodes, d, function(t, dd) a * t + dd)), 0)
  Ps[, -ncol(Ps), drop = FALSE] - Ps[, -1, drop = FALSE]
}
pars <- lapply(1:I, function(i) {
  p <- sapply(1:(K[i] - 1), function(h) mean(X[, i] >= h, na.rm = TRUE))
  c(1, qlogis(p))
})
Y <- lapply(1:I, function(i) outer(X[, i], 0:(K[i] - 1), "==") * 1)
for (i in 1:I) Y[[i]][is.na(Y[[i]])] <- 0
negq <- function(p, r) { P <- probs(p[1], p[-1]); if (any(P <= 0)) return(1e10); -sum(r * log(P)) }
gradq <- function(p, r) {
  a <- p[1]; d <- p[-1]; m <- length(d)
  eta <- outer(nodes, d, function(t, dd) a * t + dd); F <- plogis(eta); f <- F * (1 - F)
  Ps <- cbind(1, F, 0); P <- Ps[, -(m + 2)] - Ps[, -1]
  fs <- cbind(0, f, 0); R <- r / P
  ga <- sum(R * ((fs[, -(m + 2)] - fs[, -1]) * nodes))
  gd <- sapply(1:m, function(h) sum(R[, h + 1] * f[, h]) - sum(R[, h] * f[, h]))
  -c(ga, gd)
}
iter <- 0
repeat {
  iter <- iter + 1
  L <- matrix(log(w), N, 61, byrow = TRUE)
  for (i in 1:I) L <- L + Y[[i]] %*% t(log(probs(pars[[i]][1], pars[[i]][-1])))
  mx <- apply(L, 1, max); E <- exp(L - mx); W <- E / rowSums(E)
  old <- unlist(pars)
  for (i in 1:I) {
    r <- t(W) %*% Y[[i]]
    pars[[i]] <- optim(pars[[i]], negq, gradq, r = r, method = "BFGS",
                       control = list(reltol = 1e-10))$par
  }
  if (max(abs(unlist(pars) - old)) < 1e-4 || iter >= 2000) break
}
loglik <- sum(log(rowSums(E)) + mx)
elapsed <- proc.time()[[1]] - t0
writeLines(toJSON(list(seconds = elapsed, iterations = iter, loglik = loglik,
                       est = unlist(pars), R = R.version.string), digits = NA, auto_unbox = TRUE),
           args[2])
