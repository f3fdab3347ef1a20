#!/usr/bin/env bash
# Refresh the PocketBase JavaScript SDK the web app imports (pb_public/vendor/), from the npm
# registry: the page needs no build step, only this one file (and its licence) in the repo.
#
#   tools/vendor-js-sdk.sh 0.28.1
set -euo pipefail
version=${1:?usage: tools/vendor-js-sdk.sh VERSION (e.g. 0.28.1)}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "pocketbase@$version" --silent >/dev/null && tar xzf "pocketbase-$version.tgz")
cp "$work/package/dist/pocketbase.es.mjs" "$here/pb_public/vendor/pocketbase.es.mjs"
cp "$work/package/LICENSE.md" "$here/pb_public/vendor/LICENSE-pocketbase-js-sdk.md"
echo "$version" > "$here/pb_public/vendor/POCKETBASE_JS_SDK_VERSION"
echo "pb_public/vendor: PocketBase JS SDK $version"
