#!/usr/bin/env bash
# Sector crypto per core: callvault's batched AES-256-XTS (criterion benchmark
# benches/sector_crypto.rs) next to OpenSSL's AES-256-XTS on 4 KiB units and
# the unbatched xts-mode crate, all measured now on this machine.
# Prints one line per figure and the ratios; writes bench/results/crypto.json.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }

ossl=$(openssl speed -evp aes-256-xts -bytes 4096 -seconds 3 2>/dev/null | awk '/^AES-256-XTS/ {sub(/k$/, "", $2); print $2 * 1000}')
out=$(cargo bench --quiet --bench sector_crypto -- --warm-up-time 1 --measurement-time 3 2>/dev/null)
# criterion prints "thrpt:  [lo mid hi]" under each benchmark name; take the middle.
gibps() {
    printf '%s\n' "$out" | awk -v name="$1" '
        index($0, name) { found = 1 }
        found && /thrpt:/ { v = $4; u = $5; if (u ~ /MiB/) v /= 1024; print v; exit }'
}
enc=$(gibps "encrypt 4 KiB sector (callvault, batched)")
dec=$(gibps "decrypt 4 KiB sector (callvault, batched)")
ref=$(gibps "encrypt 4 KiB sector (xts-mode, baseline)")
python3 - "$ossl" "$enc" "$dec" "$ref" <<'PY'
import json, sys
ossl_bps, enc, dec, ref = (float(x) for x in sys.argv[1:5])
gib = 1024 ** 3
rows = {
    "openssl_aes256xts_4k_GBps": ossl_bps / 1e9,
    "callvault_encrypt_4k_GBps": enc * gib / 1e9,
    "callvault_decrypt_4k_GBps": dec * gib / 1e9,
    "xts_mode_encrypt_4k_GBps": ref * gib / 1e9,
}
rows["callvault_encrypt_vs_openssl"] = rows["callvault_encrypt_4k_GBps"] / rows["openssl_aes256xts_4k_GBps"]
rows["callvault_decrypt_vs_openssl"] = rows["callvault_decrypt_4k_GBps"] / rows["openssl_aes256xts_4k_GBps"]
rows["callvault_vs_xts_mode"] = rows["callvault_encrypt_4k_GBps"] / rows["xts_mode_encrypt_4k_GBps"]
print("sector crypto, one core, 4 KiB sectors (GB/s):")
print(f"  OpenSSL AES-256-XTS          {rows['openssl_aes256xts_4k_GBps']:.2f}")
print(f"  callvault encrypt (batched)  {rows['callvault_encrypt_4k_GBps']:.2f}  = {rows['callvault_encrypt_vs_openssl']:.2f} of OpenSSL")
print(f"  callvault decrypt (batched)  {rows['callvault_decrypt_4k_GBps']:.2f}  = {rows['callvault_decrypt_vs_openssl']:.2f} of OpenSSL")
print(f"  xts-mode crate (baseline)    {rows['xts_mode_encrypt_4k_GBps']:.2f}  (callvault is {rows['callvault_vs_xts_mode']:.1f}x)")
with open("bench/results/crypto.json", "w") as f:
    json.dump(rows, f, indent=2)
PY
