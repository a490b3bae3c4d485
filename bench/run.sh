#!/usr/bin/env bash
# callvault benchmark: the same workloads on a plain directory, on callvault and
# on gocryptfs, each backed by tmpfs and by the disk, in interleaved runs.
# Prints a table (median [min–max] per cell, ratios callvault/gocryptfs and
# callvault/plain) and writes bench/results/<timestamp>.json and latest.json.
#
#   sudo bench/run.sh                      # full run (see bench/README.md)
#   BENCH_QUICK=1 BENCH_RUNS=1 bench/run.sh  # smoke test, a few minutes
#
# Environment (all optional):
#   BENCH_RUNS=3                        interleaved runs (>= 1; the issue asks for >= 3)
#   BENCH_QUICK=1                       256 MiB sequential, 200 recorder files, 2,000 metadata files
#   BENCH_BACKINGS="tmpfs disk"         which backing stores
#   BENCH_SYSTEMS="plain callvault gocryptfs"
#   CALLVAULT_BIN_DIR=DIR               use callvaultd/callvault-keytool from DIR, do not build
#   CALLVAULTD_EXTRA_ARGS="..."         appended to every callvaultd command line
#   CALLVAULT_JOURNAL_OFF_ARGS=--no-audit   flags that turn the audit journal off (item e)
#   CALLVAULT_DTMF_ARGS="--auto-blackout dtmf"  flags that turn DTMF masking on (item g)
#   BENCH_DISK_DIR=/var/tmp             where disk-backed work directories go
#   BENCH_TMPFS_SIZE=6G                 size of the tmpfs backing store
#   BENCH_STEP_TIMEOUT=1800             seconds before one workload step is killed
#   BENCH_NICE=-10                      CPU priority of the whole benchmark (0: leave as is)
#   BENCH_CONTENTION_WARN=0.10          note a step when other processes used more than
#                                       this fraction of the machine's CPU meanwhile
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
START_EPOCH=$(date +%s)
TS=$(date -u +%Y%m%dT%H%M%SZ)

RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
BACKINGS=${BENCH_BACKINGS:-tmpfs disk}
SYSTEMS=${BENCH_SYSTEMS:-plain callvault gocryptfs}
EXTRA_ARGS=${CALLVAULTD_EXTRA_ARGS:-}
JOURNAL_OFF_ARGS=${CALLVAULT_JOURNAL_OFF_ARGS---no-audit}
DTMF_ARGS=${CALLVAULT_DTMF_ARGS---auto-blackout dtmf}
DISK_BASE=${BENCH_DISK_DIR:-/var/tmp}
TMPFS_SIZE=${BENCH_TMPFS_SIZE:-6G}
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-1800}
NICE=${BENCH_NICE:--10}
CONTENTION_WARN=${BENCH_CONTENTION_WARN:-0.10}

if [ "$QUICK" = 1 ]; then
    SEQ_MIB=256; REC_FILES=200; META_FILES=2000; OPEN_FILES=200
else
    SEQ_MIB=2048; REC_FILES=1000; META_FILES=10000; OPEN_FILES=1000
fi
FRAME=320                   # one 20 ms stereo G.711 frame
REC_SIZE=$((320 * 1024))    # 320 KiB per recording
OPEN_ROUNDS=10              # item e: OPEN_FILES x OPEN_ROUNDS opens

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- checks
[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages, mounts tmpfs and FUSE, drops caches)"
[ -e /dev/fuse ] || die "/dev/fuse is missing"
case "$RUNS" in ''|*[!0-9]*) die "BENCH_RUNS must be a positive integer";; esac
[ "$RUNS" -ge 1 ] || die "BENCH_RUNS must be >= 1"
for b in $BACKINGS; do case $b in tmpfs|disk) ;; *) die "unknown backing '$b' (tmpfs, disk)";; esac; done
for s in $SYSTEMS; do case $s in plain|callvault|gocryptfs) ;; *) die "unknown system '$s' (plain, callvault, gocryptfs)";; esac; done
has_system() { case " $SYSTEMS " in *" $1 "*) return 0;; esac; return 1; }

# ---------------------------------------------------------------- packages
need=()
command -v gocryptfs   >/dev/null || need+=(gocryptfs)
command -v fio         >/dev/null || need+=(fio)
command -v gcc         >/dev/null || need+=(gcc libc6-dev)
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v python3     >/dev/null || need+=(python3)
command -v mountpoint  >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi

# ---------------------------------------------------------------- callvault binaries
if has_system callvault; then
    if [ -n "${CALLVAULT_BIN_DIR:-}" ]; then
        BIN=$CALLVAULT_BIN_DIR
        PREBUILT=yes
        log "using callvault binaries from $BIN (not building)"
    else
        command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain, or set CALLVAULT_BIN_DIR"
        log "building callvault release binaries"
        cargo build --release --workspace --bins --manifest-path "$REPO/Cargo.toml" || die "cargo build failed"
        BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
        PREBUILT=no
    fi
    [ -x "$BIN/callvaultd" ] && [ -x "$BIN/callvault-keytool" ] || die "no callvaultd/callvault-keytool in $BIN"
fi
GOCRYPTFS_EXE=$(readlink -f "$(command -v gocryptfs)")

# ---------------------------------------------------------------- work area, cleanup
mkdir -p "$DISK_BASE"
WORK=$(mktemp -d "$DISK_BASE/callvault-bench.XXXXXX") || die "mktemp in $DISK_BASE failed"
DAEMON_PIDS=()
LOADGEN_PID=

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [ -n "$LOADGEN_PID" ] && kill "$LOADGEN_PID" 2>/dev/null
    # FUSE mounts first (deepest first), then the tmpfs.
    local m
    for m in $(awk -v w="$WORK/" 'index($2, w) == 1 && $3 ~ /^fuse/ {print $2}' /proc/mounts | sort -r); do
        fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m"
    done
    local pid
    for pid in "${DAEMON_PIDS[@]}"; do
        wait_gone "$pid" 30 || { log "daemon $pid still running after unmount; killing it"; kill "$pid"; }
    done
    for m in $(awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    rm -rf --one-file-system "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

TOOLS=$WORK/tools
LOGS=$WORK/logs
RAW=$WORK/raw.jsonl
META=$WORK/meta.txt
mkdir -p "$TOOLS" "$LOGS" "$WORK/mnt" "$WORK/disk" "$WORK/tmpfs"
: >"$RAW"
PASS=$WORK/passphrase
(umask 077; echo "bench-passphrase-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$PASS")

if case " $BACKINGS " in *" tmpfs "*) true;; *) false;; esac; then
    mount -t tmpfs -o "size=$TMPFS_SIZE,mode=0700" callvault-bench "$WORK/tmpfs" || die "cannot mount tmpfs"
fi

# Everything started from here on (daemons, fio, load generators) inherits a
# higher CPU and I/O priority, so a compile or test run elsewhere on the machine
# disturbs the measurements less. All systems get the same priority.
if [ "$NICE" != 0 ]; then
    renice -n "$NICE" -p $$ >/dev/null || log "renice $NICE failed; running at normal priority"
    ionice -c 2 -n 0 -p $$ 2>/dev/null || true
fi

log "compiling load generators"
gcc -O2 -Wall -o "$TOOLS/recorder_load" "$BENCH_DIR/recorder_load.c" || die "gcc recorder_load.c failed"
gcc -O2 -Wall -o "$TOOLS/metadata" "$BENCH_DIR/metadata.c" || die "gcc metadata.c failed"

# ---------------------------------------------------------------- helpers
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
RUN=0; BACKING=; SYSTEM=; VARIANT=default

jstr() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
# jget FILE EXPR: a value from a JSON file, EXPR in Python over d.
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# rec METRIC VALUE: one raw measurement of the current run/backing/system.
rec() {
    printf '{"run": %d, "backing": "%s", "system": "%s", "metric": "%s", "value": %s}\n' \
        "$RUN" "$BACKING" "$SYSTEM" "$1" "$2" >>"$RAW"
}
# detail NAME JSON: a load generator's or fio's full output, kept in the results.
detail() {
    printf '{"run": %d, "backing": "%s", "system": "%s", "detail": "%s", "data": %s}\n' \
        "$RUN" "$BACKING" "$SYSTEM" "$1" "$2" >>"$RAW"
}
note() {
    log "NOTE: $*"
    printf '{"run": %d, "backing": "%s", "system": "%s", "note": %s}\n' \
        "$RUN" "$BACKING" "$SYSTEM" "$(jstr "$*")" >>"$RAW"
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

wait_gone() { # PID SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [ -d "/proc/$1" ] || return 0
        # a zombie child of ours counts as gone
        [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ] && return 0
        sleep 0.1
    done
    return 1
}

cpu_ticks() { # utime+stime of a process (all threads), in clock ticks; 0 for none
    local s f
    if [ "${1:-0}" -gt 0 ] && s=$(cat "/proc/$1/stat" 2>/dev/null); then
        s=${s##*) }
        read -r -a f <<<"$s"
        echo $((f[11] + f[12]))
    else
        echo 0
    fi
}
status_kib() { # PID FIELD (VmRSS, VmHWM): value in KiB
    awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null
}

# dev_sectors read|write: sectors moved by the block device holding BENCH_DISK_DIR.
DISK_DEV=$(basename "$(df --output=source "$DISK_BASE" | tail -n 1)")
dev_sectors() {
    local f=/sys/class/block/$DISK_DEV/stat
    [ -r "$f" ] || return 0
    if [ "$1" = read ]; then awk '{print $3}' "$f"; else awk '{print $7}' "$f"; fi
}

find_gocryptfs_pid() { # MOUNTPOINT
    local d last
    for d in /proc/[0-9]*; do
        [ "$(readlink "$d/exe" 2>/dev/null)" = "$GOCRYPTFS_EXE" ] || continue
        last=$(tr '\0' '\n' <"$d/cmdline" 2>/dev/null | tail -n 1)
        [ "$last" = "$1" ] && { echo "${d#/proc/}"; return 0; }
    done
    return 1
}

# mount_fs [EXTRA CALLVAULTD ARGS...]: serve BACKDIR at MNT; sets FS_ROOT and DPID.
# Returns the daemon's exit status (2 = callvaultd rejected its arguments).
mount_fs() {
    local log=$LOGS/$SYSTEM-$BACKING-r$RUN.log rc
    case $SYSTEM in
    plain)
        mkdir -p "$BACKDIR/plain"; FS_ROOT=$BACKDIR/plain; DPID=0; return 0 ;;
    callvault)
        if [ ! -f "$BACKDIR/volume/callvault.header" ]; then
            "$BIN/callvault-keytool" init "$BACKDIR/volume" --passphrase-file "$PASS" \
                --kdf-memory 8 --kdf-time 0 >>"$log" 2>&1 || { note "callvault-keytool init failed (see log)"; return 1; }
        fi
        mkdir -p "$MNT"
        # shellcheck disable=SC2086 # word splitting of the extra args is intended
        "$BIN/callvaultd" "$BACKDIR/volume" "$MNT" --passphrase-file "$PASS" --allow-all \
            --background $EXTRA_ARGS "$@" 2>>"$log"
        rc=$?
        [ $rc -eq 0 ] || return $rc
        DPID=$(cat "$BACKDIR/volume/callvault.lock" 2>/dev/null)
        if [ -z "$DPID" ] || [ "$(cat "/proc/$DPID/comm" 2>/dev/null)" != callvaultd ]; then
            note "callvaultd mounted but its pid ($DPID, from callvault.lock) is not a callvaultd"
            DPID=0
        fi
        ;;
    gocryptfs)
        if [ ! -f "$BACKDIR/cipher/gocryptfs.conf" ]; then
            mkdir -p "$BACKDIR/cipher"
            gocryptfs -init -q -extpass "cat $PASS" -scryptn 10 "$BACKDIR/cipher" >>"$log" 2>&1 \
                || { note "gocryptfs -init failed (see log)"; return 1; }
        fi
        mkdir -p "$MNT"
        gocryptfs -q -extpass "cat $PASS" "$BACKDIR/cipher" "$MNT" >>"$log" 2>&1
        rc=$?
        [ $rc -eq 0 ] || return $rc
        DPID=$(find_gocryptfs_pid "$MNT") || { note "cannot find the gocryptfs process"; DPID=0; }
        ;;
    esac
    DAEMON_PIDS+=("$DPID")
    FS_ROOT=$MNT
    mountpoint -q "$MNT" || { note "$SYSTEM reported success but $MNT is not a mount point"; return 1; }
    return 0
}

unmount_fs() {
    [ "$SYSTEM" = plain ] && return 0
    local t0 t1
    t0=$(date +%s.%N)
    if ! fusermount3 -u "$MNT" 2>>"$LOGS/fusermount.log"; then
        sleep 1
        fusermount3 -u "$MNT" 2>>"$LOGS/fusermount.log" || { note "fusermount3 -u $MNT failed"; return 1; }
    fi
    if [ "${DPID:-0}" -gt 0 ] && ! wait_gone "$DPID" 120; then
        note "$SYSTEM daemon $DPID still running 120 s after unmount; killing it"
        kill "$DPID"
        wait_gone "$DPID" 10
    fi
    t1=$(date +%s.%N)
    rec unmount_s "$(calc "$t1 - $t0")"
    DPID=0
}

# A dead daemon (crash) leaves a dead mount: note it and serve the volume again.
ensure_alive() {
    [ "$SYSTEM" = plain ] && return 0
    if [ "${DPID:-0}" -gt 0 ] && [ -d "/proc/$DPID" ] && mountpoint -q "$MNT"; then return 0; fi
    note "$SYSTEM daemon (pid $DPID) is gone or $MNT is not mounted before step '$1'; remounting"
    fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
    mount_fs "${MOUNT_ARGS[@]}"
}

# ---------------------------------------------------------------- workloads
SEQ_BYTES=$((SEQ_MIB * 1024 * 1024))

# From fio's JSON report $1, direction $2 (write or read) of step $3: sets the
# caller's bw and bytes, keeps the details, and notes a short transfer ($4 is
# the verb for that note).
fio_numbers() {
    local out=$1 dir=$2 step=$3 verb=$4
    local r="d['jobs'][0]['$dir']"
    bw=$(jget "$out" "$r['bw_bytes']") || return 1
    bytes=$(jget "$out" "$r['io_bytes']") || return 1
    detail "${step}_fio" "$(jget "$out" "json.dumps({k: $r[k] for k in ('io_bytes', 'bw_bytes', 'runtime')} | {'error': d['jobs'][0]['error']})")"
    [ "$bytes" -eq "$SEQ_BYTES" ] || note "$step: fio $verb $bytes bytes, expected $SEQ_BYTES"
}

wl_a() { # sequential write, 1 MiB writes, fsync at the end
    drop_caches
    local c0 c1 out=$WORK/fio-write.json
    c0=$(cpu_ticks "$DPID")
    timeout "$STEP_TIMEOUT" fio --name=seqwrite --filename="$FS_ROOT/seq.bin" --rw=write --bs=1M \
        --size="${SEQ_MIB}M" --end_fsync=1 --ioengine=psync --fallocate=none \
        --output-format=json >"$out" 2>"$WORK/fio.err" \
        || { note "a: fio write failed: $(tail -n 3 "$WORK/fio.err" | tr '\n' ' ')"; return 1; }
    c1=$(cpu_ticks "$DPID")
    local bw bytes cpu
    fio_numbers "$out" write a wrote || return 1
    rec a_write_MBps "$(calc "$bw / 1e6")"
    if [ "$DPID" -gt 0 ]; then
        cpu=$(calc "($c1 - $c0) / $CLK_TCK")
        rec a_daemon_cpu_s "$cpu"
        rec a_daemon_cpu_s_per_GB "$(calc "$cpu / ($bytes / 1e9)")"
    fi
    log "  a. seq write: $(calc "$bw / 1e6") MB/s"
}

wl_b() { # sequential read after unmount, drop caches, remount
    local size
    size=$(stat -c %s "$FS_ROOT/seq.bin" 2>/dev/null) || { note "b: seq.bin missing after (a)"; return 1; }
    [ "$size" -eq "$SEQ_BYTES" ] || { note "b: seq.bin has $size bytes, expected $SEQ_BYTES"; return 1; }
    if [ "$SYSTEM" != plain ]; then
        unmount_fs || return 1
        drop_caches
        mount_fs "${MOUNT_ARGS[@]}" || { note "b: remount failed (exit $?)"; return 1; }
        size=$(stat -c %s "$FS_ROOT/seq.bin" 2>/dev/null)
        [ "$size" = "$SEQ_BYTES" ] || { note "b: after remount seq.bin has ${size:-no} bytes, expected $SEQ_BYTES"; return 1; }
    else
        drop_caches
    fi
    local c0 c1 out=$WORK/fio-read.json bw bytes cpu d0 d1
    c0=$(cpu_ticks "$DPID")
    d0=$(dev_sectors read)
    timeout "$STEP_TIMEOUT" fio --name=seqread --filename="$FS_ROOT/seq.bin" --rw=read --bs=1M \
        --size="${SEQ_MIB}M" --ioengine=psync --output-format=json >"$out" 2>"$WORK/fio.err" \
        || { note "b: fio read failed: $(tail -n 3 "$WORK/fio.err" | tr '\n' ' ')"; return 1; }
    c1=$(cpu_ticks "$DPID")
    d1=$(dev_sectors read)
    if [ "$BACKING" = disk ] && [ -n "$d0" ] && [ -n "$d1" ]; then
        # Proof the read was cold: what the disk device delivered meanwhile.
        rec b_device_read_MB "$(calc "($d1 - $d0) * 512 / 1e6")"
        [ $(((d1 - d0) * 512)) -ge $((SEQ_BYTES * 9 / 10)) ] \
            || note "b: the disk delivered only $(((d1 - d0) * 512 / 1048576)) MiB during a $SEQ_MIB MiB read: not a cold read"
    fi
    fio_numbers "$out" read b read || return 1
    rec b_read_MBps "$(calc "$bw / 1e6")"
    if [ "$DPID" -gt 0 ]; then
        cpu=$(calc "($c1 - $c0) / $CLK_TCK")
        rec b_daemon_cpu_s_per_GB "$(calc "$cpu / ($bytes / 1e9)")"
    fi
    rm -f "$FS_ROOT/seq.bin"
    log "  b. seq read:  $(calc "$bw / 1e6") MB/s"
}

wl_c() { # recorder load; samples the daemon's memory (item f) while all files are open
    local dir=$FS_ROOT/rec fifo=$WORK/hold.fifo out=$WORK/rec.json err=$WORK/rec.err
    mkdir -p "$dir" || { note "c: mkdir failed"; return 1; }
    rm -f "$fifo"; mkfifo "$fifo"
    drop_caches
    if [ "$DPID" -gt 0 ]; then rec f_rss_idle_MiB "$(calc "$(status_kib "$DPID" VmRSS) / 1024")"; fi
    local c0 c1 rc i held=0
    c0=$(cpu_ticks "$DPID")
    timeout "$STEP_TIMEOUT" "$TOOLS/recorder_load" "$dir" --files "$REC_FILES" --frame "$FRAME" \
        --size "$REC_SIZE" --hold-fifo "$fifo" >"$out" 2>"$err" &
    LOADGEN_PID=$!
    for ((i = 0; i < STEP_TIMEOUT * 20; i++)); do
        if grep -q '^holding' "$err" 2>/dev/null; then held=1; break; fi
        kill -0 "$LOADGEN_PID" 2>/dev/null || break
        sleep 0.05
    done
    if [ $held = 1 ]; then
        sleep 0.2
        if [ "$DPID" -gt 0 ]; then
            rec f_rss_MiB "$(calc "$(status_kib "$DPID" VmRSS) / 1024")"
            rec f_hwm_MiB "$(calc "$(status_kib "$DPID" VmHWM) / 1024")"
        fi
        timeout 30 sh -c "echo go > '$fifo'" || note "c: could not release the load generator"
    else
        note "c/f: the load generator never reached the hold point: $(tail -n 3 "$err" | tr '\n' ' ')"
    fi
    wait "$LOADGEN_PID"; rc=$?
    LOADGEN_PID=
    c1=$(cpu_ticks "$DPID")
    if [ $rc -ne 0 ]; then
        note "c: recorder_load exited $rc: $(grep -v '^holding' "$err" | tail -n 3 | tr '\n' ' ')"
        [ -s "$out" ] && detail c_recorder_load "$(head -n 1 "$out")"
        rm -rf "$dir" 2>/dev/null
        return 1
    fi
    detail c_recorder_load "$(cat "$out")"
    local wps streams bytes cpu
    wps=$(jget "$out" 'd["writes_per_s"]')
    streams=$(jget "$out" 'd["streams_16kBps"]')
    bytes=$(jget "$out" 'd["bytes"]')
    rec c_writes_per_s "$wps"
    rec c_streams "$streams"
    rec c_loadgen_cpu_s "$(jget "$out" 'd["cpu_s"]')"
    if [ "$DPID" -gt 0 ]; then
        cpu=$(calc "($c1 - $c0) / $CLK_TCK")
        rec c_daemon_cpu_s "$cpu"
        rec c_daemon_cpu_s_per_GB "$(calc "$cpu / ($bytes / 1e9)")"
    fi
    rm -rf "$dir"
    log "  c. recorder:  $wps writes/s, $streams streams"
}

wl_d() { # metadata: create, (drop caches), stat, list, unlink
    local dir=$FS_ROOT/meta out1=$WORK/meta1.json out2=$WORK/meta2.json
    mkdir -p "$dir" || { note "d: mkdir failed"; return 1; }
    drop_caches
    timeout "$STEP_TIMEOUT" "$TOOLS/metadata" "$dir" --files "$META_FILES" create >"$out1" 2>"$WORK/meta.err" \
        || { note "d: create failed: $(tail -n 2 "$WORK/meta.err" | tr '\n' ' ')"; rm -rf "$dir"; return 1; }
    drop_caches
    timeout "$STEP_TIMEOUT" "$TOOLS/metadata" "$dir" --files "$META_FILES" stat,list,unlink >"$out2" 2>"$WORK/meta.err" \
        || { note "d: stat/list/unlink failed: $(tail -n 2 "$WORK/meta.err" | tr '\n' ' ')"; rm -rf "$dir"; return 1; }
    detail d_metadata "$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])) | json.load(open(sys.argv[2]))))' "$out1" "$out2")"
    rec d_create_per_s "$(jget "$out1" 'd["create"]["ops_per_s"]')"
    rec d_stat_per_s "$(jget "$out2" 'd["stat"]["ops_per_s"]')"
    rec d_list_per_s "$(jget "$out2" 'd["list"]["ops_per_s"]')"
    rec d_unlink_per_s "$(jget "$out2" 'd["unlink"]["ops_per_s"]')"
    rmdir "$dir" || note "d: directory not empty after unlinking every file"
    log "  d. metadata:  create $(jget "$out1" 'd["create"]["ops_per_s"]')/s, stat $(jget "$out2" 'd["stat"]["ops_per_s"]')/s, list $(jget "$out2" 'd["list"]["ops_per_s"]')/s, unlink $(jget "$out2" 'd["unlink"]["ops_per_s"]')/s"
}

wl_e() { # open+close of existing files; METRIC name as $1
    local metric=$1 dir=$FS_ROOT/open out=$WORK/open.json
    rm -rf "$dir"; mkdir -p "$dir" || { note "e: mkdir failed"; return 1; }
    "$TOOLS/metadata" "$dir" --files "$OPEN_FILES" create >/dev/null 2>"$WORK/meta.err" \
        || { note "e: create failed: $(tail -n 2 "$WORK/meta.err" | tr '\n' ' ')"; return 1; }
    drop_caches
    timeout "$STEP_TIMEOUT" "$TOOLS/metadata" "$dir" --files "$OPEN_FILES" --rounds "$OPEN_ROUNDS" open >"$out" 2>"$WORK/meta.err" \
        || { note "e: open failed: $(tail -n 2 "$WORK/meta.err" | tr '\n' ' ')"; return 1; }
    detail "$metric" "$(cat "$out")"
    rec "$metric" "$(jget "$out" 'd["open"]["ops_per_s"]')"
    "$TOOLS/metadata" "$dir" --files "$OPEN_FILES" unlink >/dev/null 2>&1
    rmdir "$dir" 2>/dev/null
    log "  e. open+close ($metric): $(jget "$out" 'd["open"]["ops_per_s"]')/s"
}

wl_g() { # WAV recorder load (item c's sizes, --wav), daemon CPU; VARIANT dtmf or nodtmf as $1
    local v=$1 dir=$FS_ROOT/wavrec out=$WORK/wav.json err=$WORK/wav.err
    rm -rf "$dir"; mkdir -p "$dir" || { note "g: mkdir failed"; return 1; }
    drop_caches
    local c0 c1 rc
    c0=$(cpu_ticks "$DPID")
    timeout "$STEP_TIMEOUT" "$TOOLS/recorder_load" "$dir" --wav --files "$REC_FILES" --frame "$FRAME" \
        --size "$REC_SIZE" >"$out" 2>"$err" &
    LOADGEN_PID=$!
    wait "$LOADGEN_PID"; rc=$?
    LOADGEN_PID=
    c1=$(cpu_ticks "$DPID")
    if [ $rc -ne 0 ]; then
        note "g ($v): recorder_load --wav exited $rc: $(tail -n 3 "$err" | tr '\n' ' ')"
        [ -s "$out" ] && detail "g_recorder_load_$v" "$(head -n 1 "$out")"
        rm -rf "$dir" 2>/dev/null
        return 1
    fi
    detail "g_recorder_load_$v" "$(cat "$out")"
    local wps secs cpu
    wps=$(jget "$out" 'd["writes_per_s"]')
    secs=$(jget "$out" 'd["audio_stream_seconds"]')
    rec "g_writes_per_s_$v" "$wps"
    G_WPS[$v]=$wps
    if [ "$DPID" -gt 0 ]; then
        cpu=$(calc "($c1 - $c0) / $CLK_TCK")
        rec "g_daemon_cpu_s_$v" "$cpu"
        G_CPU[$v]=$cpu
        if [ "$c1" -gt "$c0" ]; then
            # real-time 8 kHz mono streams one fully busy core keeps up with
            local sfx=; [ "$v" = dtmf ] || sfx=_$v
            rec "g_streams_per_core$sfx" "$(calc "$secs / $cpu")"
            rec "g_daemon_cpu_ms_per_stream_minute$sfx" "$(calc "$cpu * 1000 / ($secs / 60)")"
        else
            note "g ($v): the daemon used no measurable CPU (under 1 tick)"
        fi
    fi
    rm -rf "$dir"
    log "  g. WAV recorder ($v): $wps writes/s, $secs stream-s, daemon CPU ${cpu:-n/a} s"
}

# CPU ticks used since a snapshot by processes outside this benchmark: every
# user-space process that is not this script, one of its children or one of our
# daemons (kernel threads are left out: writeback and RCU work are mostly ours).
# An exited process counts through its parent's cutime/cstime when reaped.
# proc_cpu snapshot FILE | proc_cpu foreign FILE
proc_cpu() {
    python3 - "$1" "$2" "$$" "${DAEMON_PIDS[*]:-}" <<'PY'
import json, os, sys
mode, path, me, daemons = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split()
procs = {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        s = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()
    ppid, flags = int(f[1]), int(f[6])
    if flags & 0x00200000 or int(d) == 2 or ppid == 2:  # PF_KTHREAD
        continue
    procs[int(d)] = (ppid, int(f[11]) + int(f[12]) + int(f[13]) + int(f[14]), f[19])
if mode == "snapshot":
    json.dump({str(k): v for k, v in procs.items()}, open(path, "w"))
    sys.exit(0)
old = json.load(open(path))
skip = {me} | {int(x) for x in daemons if x.isdigit() and x != "0"}
def ours(pid):
    seen = 0
    while pid in procs and seen < 64:
        if pid in skip:
            return True
        pid = procs[pid][0]
        seen += 1
    return pid in skip
total = 0
for pid, (ppid, ticks, start) in procs.items():
    if ours(pid):
        continue
    o = old.get(str(pid))
    total += ticks - (o[1] if o and o[2] == start else 0)
print(max(total, 0))
PY
}
# Busy ticks of the whole machine (user+nice+system+irq+softirq), and steal.
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8, $9; exit}' /proc/stat; }
# Ticks of this shell and of every child it has waited for.
self_ticks() {
    local s f
    s=$(cat /proc/$$/stat); s=${s##*) }
    read -r -a f <<<"$s"
    echo $((f[11] + f[12] + f[13] + f[14]))
}

step() { # NAME FUNCTION [ARGS...]: run one workload, survive its failure, measure foreign load
    local name=$1 rc=0; shift
    ensure_alive "$name" || { note "cannot serve $SYSTEM again; skipping '$name'"; return 1; }
    local t0 t1 b0 b1 st0 st1 s0 s1 d0 d1 dp0=$DPID daemon foreign machine frac steal snap=$WORK/procs.json
    # Two estimates of other processes' CPU, each with its own error: the process
    # scan books a long-lived child at once when its parent reaps it; the machine
    # total minus ours also holds kernel threads working for us (writeback, RCU
    # after a cache drop). The smaller one is kept.
    proc_cpu snapshot "$snap"
    t0=$(date +%s.%N); read -r b0 st0 < <(machine_ticks); s0=$(self_ticks); d0=$(cpu_ticks "$DPID")
    "$@" || rc=1
    t1=$(date +%s.%N); read -r b1 st1 < <(machine_ticks); s1=$(self_ticks); d1=$(cpu_ticks "$DPID")
    if [ "$DPID" = "$dp0" ]; then daemon=$((d1 - d0)); else daemon=$d1; fi
    machine=$((b1 - b0 - (s1 - s0) - daemon))
    foreign=$(proc_cpu foreign "$snap")
    [ "$machine" -lt "$foreign" ] && foreign=$machine
    [ "$foreign" -lt 0 ] && foreign=0
    # capped at 1: a parent reaping a long-running child books all of its CPU at once
    frac=$(awk "BEGIN { f = $foreign / (($t1 - $t0) * $CLK_TCK * $NCPU); printf \"%.6f\", (f > 1 ? 1 : f) }")
    steal=$(calc "($st1 - $st0) / (($t1 - $t0) * $CLK_TCK * $NCPU)")
    rec "other_load_${name//-/_}" "$frac"
    rec "steal_${name//-/_}" "$steal"
    if awk "BEGIN { exit !($frac > $CONTENTION_WARN) }"; then
        note "step '$name': other processes used $(calc "$frac * 100" | cut -d. -f1)% of the machine's CPU meanwhile (at lower priority); compare with the other runs"
    fi
    [ $rc -eq 0 ] || { note "step '$name' failed"; return 1; }
}

# ---------------------------------------------------------------- metadata of the run
{
    echo "timestamp=$TS"
    echo "runs=$RUNS"
    echo "quick=$QUICK"
    echo "backings=$BACKINGS"
    echo "systems=$SYSTEMS"
    echo "seq_bytes=$SEQ_BYTES"
    echo "rec_files=$REC_FILES"
    echo "rec_frame_bytes=$FRAME"
    echo "rec_bytes_per_file=$REC_SIZE"
    echo "meta_files=$META_FILES"
    echo "open_files=$OPEN_FILES"
    echo "open_rounds=$OPEN_ROUNDS"
    echo "tmpfs_size=$TMPFS_SIZE"
    echo "nice=$NICE"
    echo "contention_warn=$CONTENTION_WARN"
    echo "disk_dir=$DISK_BASE"
    echo "callvaultd_extra_args=$EXTRA_ARGS"
    echo "journal_off_args=$JOURNAL_OFF_ARGS"
    echo "dtmf_args=$DTMF_ARGS"
    echo "kernel=$(uname -r)"
    echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "cpus=$(nproc)"
    echo "mem_kib=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
    echo "disk_fs=$(df -T "$DISK_BASE" | awk 'NR == 2 {print $1 " " $2}')"
    echo "fio=$(fio --version)"
    echo "gocryptfs=$(gocryptfs -version 2>/dev/null | head -n 1)"
    if has_system callvault; then
        echo "callvault_bin_dir=$BIN"
        echo "callvault_prebuilt=$PREBUILT"
        echo "callvaultd_version=$("$BIN/callvaultd" --version 2>/dev/null)"
        echo "callvaultd_sha256=$(sha256sum "$BIN/callvaultd" | cut -c1-16)"
        echo "callvaultd_mtime=$(date -u -r "$BIN/callvaultd" +%Y-%m-%dT%H:%M:%SZ)"
    fi
    echo "disk_device=$DISK_DEV"
    echo "repo_head=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "none (not a git checkout)")"
    echo "repo_dirty_files=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | wc -l)"
} >"$META"

# ---------------------------------------------------------------- the runs
JOURNAL_OFF=unknown   # becomes "yes" or "no" at the first callvault run
DTMF=unknown          # likewise for item g's DTMF masking
declare -A G_WPS G_CPU
log "work dir $WORK; runs=$RUNS quick=$QUICK backings=[$BACKINGS] systems=[$SYSTEMS]"
log "sizes: sequential $SEQ_MIB MiB, recorder $REC_FILES files x $REC_SIZE B in $FRAME B writes, metadata $META_FILES files, open $OPEN_FILES x $OPEN_ROUNDS"
for ((RUN = 1; RUN <= RUNS; RUN++)); do
    for BACKING in $BACKINGS; do
        for SYSTEM in $SYSTEMS; do
            log "run $RUN/$RUNS, $BACKING, $SYSTEM"
            BACKDIR=$WORK/$BACKING/$SYSTEM-r$RUN
            MNT=$WORK/mnt/$SYSTEM
            MOUNT_ARGS=()
            mkdir -p "$BACKDIR"
            mount_fs; rc=$?
            if [ $rc -ne 0 ]; then
                note "$SYSTEM failed to mount (exit $rc): $(tail -n 2 "$LOGS/$SYSTEM-$BACKING-r$RUN.log" 2>/dev/null | tr '\n' ' ')"
                rm -rf --one-file-system "$BACKDIR"
                continue
            fi
            step a wl_a && step b wl_b
            step c wl_c
            step d wl_d
            step e wl_e e_open_per_s
            unmount_fs
            if [ "$SYSTEM" = callvault ] && [ "$JOURNAL_OFF" != no ]; then
                # Item e again with the audit journal off.
                # shellcheck disable=SC2206 # split the flags on purpose
                MOUNT_ARGS=($JOURNAL_OFF_ARGS)
                mount_fs "${MOUNT_ARGS[@]}"; rc=$?
                if [ $rc -eq 2 ]; then
                    JOURNAL_OFF=no
                    note "e: callvaultd rejects '$JOURNAL_OFF_ARGS' (exit 2): journal on/off comparison not available"
                elif [ $rc -ne 0 ]; then
                    note "e: callvaultd with '$JOURNAL_OFF_ARGS' failed to mount (exit $rc)"
                else
                    JOURNAL_OFF=yes
                    step e-off wl_e e_open_per_s_journal_off
                    unmount_fs
                fi
                MOUNT_ARGS=()
            fi
            if [ "$SYSTEM" = callvault ] && [ "$DTMF" != no ]; then
                # Item g: the WAV recorder load with DTMF masking on and on a plain
                # mount, both in this run, so their ratio compares like with like.
                # Odd runs mask first (run 1 so, to learn whether the flag
                # exists before anything is measured), even runs the other way.
                G_WPS=(); G_CPU=()
                if [ $((RUN % 2)) -eq 1 ]; then order="dtmf nodtmf"; else order="nodtmf dtmf"; fi
                for v in $order; do
                    # shellcheck disable=SC2206 # split the flags on purpose
                    if [ "$v" = dtmf ]; then MOUNT_ARGS=($DTMF_ARGS); else MOUNT_ARGS=(); fi
                    mount_fs "${MOUNT_ARGS[@]}"; rc=$?
                    if [ $rc -eq 2 ] && [ "$v" = dtmf ]; then
                        DTMF=no
                        note "g: callvaultd rejects '$DTMF_ARGS' (exit 2, an older binary): item g skipped"
                        break
                    elif [ $rc -ne 0 ]; then
                        note "g ($v): callvaultd failed to mount (exit $rc)"
                        continue
                    fi
                    [ "$v" = dtmf ] && DTMF=yes
                    step "g-$v" wl_g "$v"
                    unmount_fs
                done
                if [ -n "${G_WPS[dtmf]:-}" ] && [ -n "${G_WPS[nodtmf]:-}" ]; then
                    rec g_dtmf_writes_ratio "$(calc "${G_WPS[dtmf]} / ${G_WPS[nodtmf]}")"
                fi
                if [ -n "${G_CPU[dtmf]:-}" ] && [ -n "${G_CPU[nodtmf]:-}" ] \
                    && awk "BEGIN { exit !(${G_CPU[nodtmf]} > 0) }"; then
                    rec g_dtmf_cpu_ratio "$(calc "${G_CPU[dtmf]} / ${G_CPU[nodtmf]}")"
                fi
                MOUNT_ARGS=()
            fi
            rm -rf --one-file-system "$BACKDIR"
        done
    done
done
{
    echo "journal_off_available=$JOURNAL_OFF"
    echo "dtmf_available=$DTMF"
    echo "duration_s=$(($(date +%s) - START_EPOCH))"
} >>"$META"

# ---------------------------------------------------------------- report
mkdir -p "$BENCH_DIR/results"
python3 "$BENCH_DIR/report.py" --raw "$RAW" --meta "$META" --logs "$LOGS" \
    --out "$BENCH_DIR/results/$TS.json" || {
    cp "$RAW" "$BENCH_DIR/results/$TS.raw.jsonl"; cp "$META" "$BENCH_DIR/results/$TS.meta.txt"
    die "report.py failed; raw data kept in bench/results/$TS.raw.jsonl"; }
cp "$BENCH_DIR/results/$TS.json" "$BENCH_DIR/results/latest.json"
log "wrote bench/results/$TS.json and bench/results/latest.json ($(($(date +%s) - START_EPOCH)) s in all)"

# ---------------------------------------------------------------- sector crypto
# Per-core AES-256-XTS: callvault's batched cipher (criterion) against OpenSSL
# and the xts-mode crate, measured now on this machine.
if [ "${BENCH_CRYPTO:-1}" = 1 ]; then
    "$BENCH_DIR/crypto.sh" || log "sector crypto benchmark failed"
fi
