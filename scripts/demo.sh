#!/usr/bin/env bash
# One command from a fresh machine to a mounted demo volume with a recording in
# it: installs prerequisites, builds, creates the volume, mounts it in the
# background and writes a sample call recording through the mount.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/demo.sh: run as root (it installs packages and mounts with allow_other)" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq fuse3 attr python3 >/dev/null

cargo build --release --workspace --bins --quiet
bin=$PWD/target/release

demo=${CALLVAULT_DEMO_DIR:-/var/tmp/callvault-demo}
volume=$demo/volume
mnt=$demo/mnt
pass=$demo/passphrase
mkdir -p "$demo" "$mnt"
chmod 700 "$demo"

if [ ! -f "$pass" ]; then
    # A random demo passphrase (48 hex digits: letters and digits, as the
    # passphrase rules ask), readable by root only.
    (umask 077; printf 'demo-%s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$pass")
fi
if [ ! -f "$volume/callvault.header" ]; then
    "$bin/callvault-keytool" init "$volume" --passphrase-file "$pass" --label demo-operator
fi
if ! mountpoint -q "$mnt"; then
    "$bin/callvaultd" "$volume" "$mnt" --passphrase-file "$pass" --allow-all --background 2>>"$demo/callvaultd.log"
fi

# A 10-second 8 kHz call recording (a two-tone "ringback" pattern).
mkdir -p "$mnt/team-a"
python3 - "$mnt/team-a/demo-call-0001.wav" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    frames = bytearray()
    for i in range(80000):
        on = (i // 8000) % 3 != 2
        v = (math.sin(2 * math.pi * 440 * i / 8000) + math.sin(2 * math.pi * 480 * i / 8000)) * 6000 if on else 0
        frames += struct.pack("<h", int(v))
    w.writeframes(bytes(frames))
PY

echo
echo "callvault demo is mounted."
echo "  decrypted view (what recorders and players see): $mnt"
ls -l "$mnt/team-a"
echo "  encrypted backing store (what lands on disk):   $volume/data"
find "$volume/data" -maxdepth 2 | head -n 8
echo "  daemon log: $demo/callvaultd.log until mounted, then syslog (journalctl -t callvaultd)"
echo
echo "Stop it with:   fusermount3 -u $mnt"
echo "Mount it again: $bin/callvaultd $volume $mnt --passphrase-file $pass --allow-all --background"
