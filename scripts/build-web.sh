#!/usr/bin/env bash
# Builds the dashboard (web/, Vue + Vite) into web/dist, which the operator embeds when
# `zeitwork` is built next. Installs Node.js and npm from Debian when missing; Vite needs
# Node 20.19 or later (Debian 13's). Extra arguments: npm scripts to run after the build
# (e.g. `test`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  scripts/setup.sh nodejs npm
fi
version=$(node -p 'process.versions.node')
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "build-web: Node.js $version is too old for the dashboard's build (Vite needs 20.19 or later)" >&2
  exit 1
fi
cd web
# The lock file pins every package; `npm ci` installs exactly those.
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
for script in "$@"; do
  npm run --silent "$script"
done
