# Sourced by scripts/test and scripts/validate: the shared setup steps.
#
#   install_chromium WHAT   when Chromium's headless shell is missing and we are root with apt-get
#                           (CI, a fresh container), install Debian's chromium-headless-shell (the
#                           lighter print engine; the full chromium when the shell has no package
#                           here and no chromium is installed); WHAT says what it is for.
#   make_venv EXTRAS        create .venv and install the package with EXTRAS ("" or "[test]"),
#                           then compile its modules to bytecode: an editable install is not
#                           compiled by pip, and where PYTHONDONTWRITEBYTECODE is set Python
#                           would compile them again on every run (about 0.6 s of each). A .venv
#                           set up before with these EXTRAS from the same pyproject.toml (its
#                           SHA-256 is kept in .venv/.setup<extras>) is used as it is: the
#                           install is editable, so only pyproject.toml can change what pip
#                           would install (about 10 s saved on every later run).
#
# A package index can cut a download short (IncompleteRead); pip does not retry a broken body,
# so each pip install is tried up to three times before the script gives up.

install_chromium() {
  command -v chromium-headless-shell >/dev/null 2>&1 && return 0
  [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 || return 0
  echo "Installing Debian's chromium-headless-shell for $1 (apt-get)..."
  apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null && return 0
  command -v chromium >/dev/null 2>&1 && return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    || echo "Could not install chromium: $1 will be missing."
}

pip_install() {
  local attempt
  for attempt in 1 2 3; do
    if .venv/bin/python -m pip install --quiet --retries 10 "$@"; then
      return 0
    fi
    echo "pip install $* failed (attempt $attempt of 3)" >&2
    sleep $((attempt * 5))
  done
  return 1
}

make_venv() {
  local stamp=".venv/.setup$(printf '%s' "$1" | tr -dc 'a-z')" want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
      && .venv/bin/python -c "import sys" >/dev/null 2>&1; then
    .venv/bin/python -m compileall -q instrument >/dev/null
    return 0
  fi
  python3 -m venv .venv
  pip_install --upgrade pip
  pip_install -e ".$1"
  .venv/bin/python -m compileall -q instrument >/dev/null
  echo "$want" > "$stamp"
}
