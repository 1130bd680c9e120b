#!/usr/bin/env bash
# Proves that the host simulator bites: for each deliberate bug in mutations.json, a copy of the
# repo with the bug built in runs host-simulator seeds until one fails, and says after how many.
#   bash test/sim/mutations/run.sh [SEEDS_MAX] [NAME ...]     (from the repo's root, after a build)
# A mutation is a literal find-and-replace in one file; a group of entries with names that share
# the part before " (" is one mutation. Before anything runs, every find string must occur exactly
# once in its file, or the run fails: the code it aimed at has moved (or is ambiguous), and the
# entry must be updated. The repo itself is never edited: each mutation is built in a copy under
# /tmp, removed on exit whatever happens. JOBS sets the simulator's worker threads (default: the
# cores); builds and seeds run under `nice -n 10`, the machine being shared.
set -euo pipefail
cd "$(dirname "$0")/../../.."
seeds_max=${1:-400}
shift || true
root=$PWD
work=$(mktemp -d /tmp/flotilla-mutations-XXXXXX)
trap 'rm -rf "$work"' EXIT
node -e '
  const fs = require("fs");
  let bad = 0;
  for (const m of JSON.parse(fs.readFileSync("test/sim/mutations/mutations.json", "utf8"))) {
    const n = fs.readFileSync(m.file, "utf8").split(m.find).length - 1;
    if (n !== 1) { console.error(`mutation ${m.name}: its find text occurs ${n} times in ${m.file} (must be once)`); bad++; }
  }
  process.exit(bad > 0 ? 3 : 0);'
jobs=()
[ -n "${JOBS:-}" ] && jobs=(--jobs "$JOBS")
names=$(node -e '
  const all = JSON.parse(require("fs").readFileSync("test/sim/mutations/mutations.json", "utf8"));
  const want = process.argv.slice(1);
  const names = [...new Set(all.map((m) => m.name.split(" (")[0]))].filter((n) => want.length === 0 || want.includes(n));
  console.log(names.join("\n"));' "$@")
status=0
while IFS= read -r name; do
  [ -n "$name" ] || continue
  dir="$work/$name"
  mkdir -p "$dir"
  cp -r src test bench native-free package.json tsconfig.json "$dir/"
  ln -s "$root/node_modules" "$dir/node_modules"
  node -e '
    const fs = require("fs");
    const [dir, name] = process.argv.slice(1);
    for (const m of JSON.parse(fs.readFileSync("test/sim/mutations/mutations.json", "utf8"))) {
      if (m.name.split(" (")[0] !== name) continue;
      const f = dir + "/" + m.file;
      const s = fs.readFileSync(f, "utf8");
      if (!s.includes(m.find)) { console.error(`mutation ${m.name}: text not found in ${m.file}`); process.exit(3); }
      fs.writeFileSync(f, s.replace(m.find, m.replace));
    }' "$dir" "$name"
  (cd "$dir" && nice -n 10 npx tsc -p tsconfig.json)
  what=$(node -e 'const a = JSON.parse(require("fs").readFileSync("test/sim/mutations/mutations.json", "utf8")); console.log(a.find((m) => m.name === process.argv[1]).what)' "$name")
  found=""
  for ((start = 1; start <= seeds_max; start += 50)); do
    n=$(( seeds_max - start + 1 < 50 ? seeds_max - start + 1 : 50 ))
    out=$(cd "$dir" && nice -n 10 node dist/test/sim/host-cli.js --seeds "$n" --seed-start "$start" "${jobs[@]}" 2>&1 || true)
    # Seeds of a batch finish out of order (several jobs): report the lowest that failed.
    seed=$(printf '%s\n' "$out" | sed -nE 's/^FAIL seed ([0-9]+).*/\1/p' | sort -n | head -n 1)
    if [ -n "$seed" ]; then
      first=$(printf '%s\n' "$out" | grep -m1 -E "^FAIL seed $seed( |:)")
      found="$seed"
      printf 'mutation %s (%s): caught by seed %s (the first of seeds 1..%s to fail): %s\n' "$name" "$what" "$seed" "$seed" "${first#FAIL }"
      break
    fi
  done
  if [ -z "$found" ]; then
    printf 'mutation %s (%s): NOT caught in %s seeds\n' "$name" "$what" "$seeds_max"
    status=1
  fi
done <<< "$names"
exit $status
