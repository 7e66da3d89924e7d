#!/usr/bin/env bash
# Run the whole test suite on every CPython 3.11+ this machine has, one venv each, and say
# which ones ran. `make test` calls this after lint; .ci/run calls `make test`.
#   scripts/test-pythons.sh [PYTEST ARGS...]
# .venv (built by make with $PYTHON) serves its own minor version; every other minor
# version found gets .venv-3.N. Interpreters are looked for as python3.N on PATH, under
# pyenv's versions folder and in /usr/bin; the first one found per minor version is used.
set -uo pipefail
cd "$(dirname "$0")/.."

version_of() {  # prints "3.12.1" for a working CPython >= 3.11, nothing otherwise
  "$1" -c 'import sys
if sys.implementation.name == "cpython" and sys.version_info >= (3, 11):
    print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null
}

candidates=()
for n in $(seq 11 30); do
  command -v "python3.$n" >/dev/null 2>&1 && candidates+=("$(command -v "python3.$n")")
done
if command -v pyenv >/dev/null 2>&1; then
  for exe in "$(pyenv root)"/versions/*/bin/python3.[0-9]*; do
    case "$exe" in *-config) continue ;; esac
    [ -x "$exe" ] && candidates+=("$exe")
  done
fi
for exe in /usr/bin/python3.[0-9]*; do
  case "$exe" in *-config) continue ;; esac
  [ -x "$exe" ] && candidates+=("$exe")
done

main_version=$(version_of .venv/bin/python)
if [ -z "$main_version" ]; then
  echo "error: .venv/bin/python is missing or older than 3.11" >&2
  echo "hint: run 'make test' (it builds .venv first)" >&2
  exit 2
fi
declare -A chosen=(["${main_version%.*}"]=".venv/bin/python")
declare -A full=(["${main_version%.*}"]="$main_version")
for exe in "${candidates[@]}"; do
  v=$(version_of "$exe") || continue
  [ -n "$v" ] || continue
  minor=${v%.*}
  [ -n "${chosen[$minor]:-}" ] && continue
  chosen[$minor]=$exe
  full[$minor]=$v
done

ran=()
failed=()
for minor in $(printf '%s\n' "${!chosen[@]}" | sort -V); do
  exe=${chosen[$minor]}
  if [ "$exe" = .venv/bin/python ]; then
    venv=.venv
  else
    venv=.venv-$minor
    stamp=$venv/.installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
      echo "== CPython ${full[$minor]}: installing into $venv"
      { [ -x "$venv/bin/python" ] || "$exe" -m venv "$venv"; } &&
        "$venv/bin/python" -m pip install --quiet --upgrade pip &&
        "$venv/bin/python" -m pip install --quiet -e '.[test]' &&
        touch "$stamp" || { failed+=("${full[$minor]} (install)"); continue; }
    fi
  fi
  echo "== CPython ${full[$minor]} ($venv): pytest"
  if "$venv/bin/python" -m pytest -q "$@"; then
    ran+=("${full[$minor]}")
  else
    failed+=("${full[$minor]}")
  fi
done

echo
[ ${#ran[@]} -gt 0 ] && echo "make test: the suite passed on CPython ${ran[*]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "make test: FAILED on CPython ${failed[*]}" >&2
  exit 1
fi
