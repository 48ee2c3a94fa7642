#!/usr/bin/env bash
# Rebuilds web/dist/ (embedded in discus serve) from the pinned lockfile: npm ci, then esbuild.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts >/dev/null
node build.mjs
du -cb dist/* | tail -1
