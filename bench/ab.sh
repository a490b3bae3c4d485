#!/usr/bin/env bash
# A/B of the recorder workload (bench/run.sh item c), or with AB_WORKLOAD=read
# of the sequential read after a remount (item b), between an earlier
# commit and the working tree, in one invocation: both release builds are
# mounted in turn on the same tmpfs, alternating which goes first, and the
# medians and their ratio are printed. This is how a data-path change is held
# to "no slower than before" on a machine whose absolute speed drifts.
#
#   sudo bench/ab.sh BASE_COMMIT            # 5 rounds, 1,000 files x 320 KiB
#   AB_ROUNDS=9 AB_FILES=200 sudo bench/ab.sh ea5217b
#
# Environment: AB_WORKLOAD (recorder | read), AB_READ_MIB (1024, for read),
# AB_ROUNDS (5), AB_FILES (1000), AB_SIZE (327680 bytes a file),
# AB_FRAME (320), AB_EXTRA_ARGS (appended to both callvaultd command lines),
# BENCH_TMPFS_SIZE (2G), AB_BASE_TARGET (the base build's target directory;
# default a temporary one, removed at the end; give a path to keep it).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
BASE=${1:?usage: bench/ab.sh BASE_COMMIT}
ROUNDS=${AB_ROUNDS:-5}
FILES=${AB_FILES:-1000}
SIZE=${AB_SIZE:-327680}
FRAME=${AB_FRAME:-320}
EXTRA=${AB_EXTRA_ARGS:-}
TMPFS_SIZE=${BENCH_TMPFS_SIZE:-2G}
WORKLOAD=${AB_WORKLOAD:-recorder}
READ_MIB=${AB_READ_MIB:-1024}
case $WORKLOAD in recorder|read) ;; *) echo "bench/ab.sh: AB_WORKLOAD must be recorder or read" >&2; exit 2;; esac

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench/ab.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it mounts tmpfs and FUSE)"
git -C "$REPO" rev-parse --verify -q "$BASE^{commit}" >/dev/null || die "no commit $BASE"

WORK=$(mktemp -d /var/tmp/callvault-ab.XXXXXX)
cleanup() {
    for m in "$WORK"/mnt-*; do mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m"; done
    mountpoint -q "$WORK/tmpfs" && umount "$WORK/tmpfs"
    git -C "$REPO" worktree remove --force "$WORK/base-src" 2>/dev/null || true
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

log "building the working tree (release)"
cargo build --release --workspace --bins --quiet --manifest-path "$REPO/Cargo.toml"
NEW_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
log "building $BASE (release, its own target directory)"
git -C "$REPO" worktree add -q --detach "$WORK/base-src" "$BASE"
BASE_TARGET=${AB_BASE_TARGET:-$WORK/base-target}
CARGO_TARGET_DIR=$BASE_TARGET cargo build --release --workspace --bins --quiet \
    --manifest-path "$WORK/base-src/Cargo.toml"
BASE_BIN=$BASE_TARGET/release
gcc -O2 -Wall -o "$WORK/recorder_load" "$BENCH_DIR/recorder_load.c"

mkdir -p "$WORK/tmpfs"
mount -t tmpfs -o size="$TMPFS_SIZE" tmpfs "$WORK/tmpfs"
PASS=$WORK/passphrase
(umask 077; echo "ab-passphrase-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$PASS")
CLK_TCK=$(getconf CLK_TCK)

# One round of one build: fresh volume, mount, load, unmount.
# Prints "writes_per_s daemon_cpu_s".
one() {
    local name=$1 bin=$2 vol=$WORK/tmpfs/vol-$1 mnt=$WORK/mnt-$1 out=$WORK/out-$1.json
    rm -rf "$vol" "$vol.audit-key"; mkdir -p "$mnt"
    "$bin/callvault-keytool" init "$vol" --passphrase-file "$PASS" --kdf-memory 8 --kdf-time 0 >/dev/null 2>&1
    # shellcheck disable=SC2086 # the extra arguments are split on purpose
    "$bin/callvaultd" "$vol" "$mnt" --passphrase-file "$PASS" --allow-all --background $EXTRA 2>>"$WORK/$name.log"
    local pid t0 t1
    pid=$(cat "$vol/callvault.lock")
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    if [ "$WORKLOAD" = read ]; then
        # Item b: write, unmount, drop caches, mount again, read it all.
        dd if=/dev/zero of="$mnt/seq.bin" bs=1M count="$READ_MIB" conv=fsync status=none
        fusermount3 -u "$mnt"
        sync; echo 3 >/proc/sys/vm/drop_caches
        # shellcheck disable=SC2086 # the extra arguments are split on purpose
        "$bin/callvaultd" "$vol" "$mnt" --passphrase-file "$PASS" --allow-all --background $EXTRA 2>>"$WORK/$name.log"
        pid=$(cat "$vol/callvault.lock")
        t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        local s0 s1
        s0=$(date +%s.%N)
        dd if="$mnt/seq.bin" of=/dev/null bs=1M status=none
        s1=$(date +%s.%N)
        t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        fusermount3 -u "$mnt"
        rm -rf "$vol"
        python3 -c "print($READ_MIB * 1048576 / 1e6 / ($s1 - $s0), ($t1-$t0)/$CLK_TCK)"
        return
    fi
    mkdir "$mnt/rec"
    sync; echo 3 >/proc/sys/vm/drop_caches
    "$WORK/recorder_load" "$mnt/rec" --files "$FILES" --frame "$FRAME" --size "$SIZE" >"$out"
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    fusermount3 -u "$mnt"
    python3 -c "import json,sys; d=json.load(open('$out')); print(d['writes_per_s'], ($t1-$t0)/$CLK_TCK)"
}

declare -a BW BC NW NC
if [ "$WORKLOAD" = read ]; then UNIT="MB/s read"; else UNIT="writes/s"; fi
for ((r = 1; r <= ROUNDS; r++)); do
    if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
    for v in $order; do
        if [ "$v" = base ]; then
            read -r w c < <(one base "$BASE_BIN"); BW+=("$w"); BC+=("$c")
        else
            read -r w c < <(one new "$NEW_BIN"); NW+=("$w"); NC+=("$c")
        fi
        log "round $r/$ROUNDS $v: $w $UNIT, daemon CPU $c s"
    done
done

python3 - "$BASE" "$WORKLOAD" "${BW[*]}" "${NW[*]}" "${BC[*]}" "${NC[*]}" <<'EOF'
import statistics as st, sys
base, workload = sys.argv[1], sys.argv[2]
bw, nw, bc, nc = [list(map(float, a.split())) for a in sys.argv[3:]]
unit = "MB/s" if workload == "read" else "writes/s"
mb, mn = st.median(bw), st.median(nw)
cb, cn = st.median(bc), st.median(nc)
what = "sequential read after a remount" if workload == "read" else "recorder appends"
print(f"{what}, tmpfs, {len(bw)} rounds each (median [min-max])")
print(f"  {base:>12}: {mb:12,.0f} {unit} [{min(bw):,.0f}-{max(bw):,.0f}]  daemon CPU {cb:.2f} s")
print(f"  {'working tree':>12}: {mn:12,.0f} {unit} [{min(nw):,.0f}-{max(nw):,.0f}]  daemon CPU {cn:.2f} s")
print(f"  ratio new/base: {unit} {mn / mb:.3f}, daemon CPU {cn / cb if cb else float('nan'):.3f}")
EOF
