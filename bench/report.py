#!/usr/bin/env python3
"""Summarise a bench/run.sh run: print the table and write the results JSON.

Input: raw.jsonl (one measurement, detail or note per line, written by run.sh),
meta.txt (key=value lines), the daemons' log directory. Output: the table on
stdout and a JSON file holding the table, the per-cell statistics and every raw
value. Standard library only.

    report.py --raw RAW --meta META [--logs DIR] --out FILE.json
    report.py --json FILE.json          # print the table of an earlier run again
"""
import argparse
import json
import os
import re
import statistics
import sys

SYSTEMS = ["plain", "callvault", "gocryptfs"]
BACKINGS = ["tmpfs", "disk"]

# metric, label, unit, better ("higher"/"lower"), daemons only
ROWS = [
    ("a_write_MBps", "a. seq write 1 MiB + fsync", "MB/s", "higher", False),
    ("a_daemon_cpu_s_per_GB", "a. daemon CPU per GB written", "s/GB", "lower", True),
    ("b_read_MBps", "b. seq read after remount", "MB/s", "higher", False),
    ("c_writes_per_s", "c. recorder 320 B appends", "writes/s", "higher", False),
    ("c_streams", "c. 16 kB/s streams sustained", "streams", "higher", False),
    ("c_daemon_cpu_s", "c. daemon CPU", "s", "lower", True),
    ("c_daemon_cpu_s_per_GB", "c. daemon CPU per GB written", "s/GB", "lower", True),
    ("c_loadgen_cpu_s", "c. load generator CPU", "s", "lower", False),
    ("d_create_per_s", "d. create", "ops/s", "higher", False),
    ("d_stat_per_s", "d. stat", "ops/s", "higher", False),
    ("d_list_per_s", "d. list", "entries/s", "higher", False),
    ("d_unlink_per_s", "d. delete", "ops/s", "higher", False),
    ("e_open_per_s", "e. open+close, journal on", "opens/s", "higher", False),
    ("e_open_per_s_journal_off", "e. open+close, journal off", "opens/s", "higher", False),
    ("f_rss_MiB", "f. daemon RSS, files open", "MiB", "lower", True),
    # item g: callvault only (plain and gocryptfs cells are n/a)
    ("g_writes_per_s_nodtmf", "g. WAV recorder, no masking", "writes/s", "higher", False),
    ("g_writes_per_s_dtmf", "g. WAV recorder, DTMF masking", "writes/s", "higher", False),
    ("g_daemon_cpu_s_nodtmf", "g. daemon CPU, no masking", "s", "lower", True),
    ("g_daemon_cpu_s_dtmf", "g. daemon CPU, DTMF masking", "s", "lower", True),
    ("g_daemon_cpu_ms_per_stream_minute", "g. CPU per 8 kHz stream-minute, DTMF", "ms", "lower", True),
    ("g_streams_per_core", "g. 8 kHz streams per core, DTMF", "streams", "higher", True),
    ("g_dtmf_cpu_ratio", "g. daemon CPU DTMF/none, same run", "ratio", "lower", True),
]
# Also kept in the JSON (statistics), not printed.
EXTRA = [
    ("b_daemon_cpu_s_per_GB", "b. daemon CPU per GB read", "s/GB", "lower", True),
    ("a_daemon_cpu_s", "a. daemon CPU", "s", "lower", True),
    ("f_rss_idle_MiB", "f. daemon RSS idle, before (c)", "MiB", "lower", True),
    ("f_hwm_MiB", "f. daemon peak RSS (VmHWM) while holding", "MiB", "lower", True),
    ("unmount_s", "unmount incl. daemon exit", "s", "lower", True),
    ("b_device_read_MB", "b. MB the disk device delivered during the read (disk backing)", "MB", "lower", False),
    ("g_dtmf_writes_ratio", "g. writes/s DTMF/none, same run", "ratio", "higher", True),
    ("g_streams_per_core_nodtmf", "g. 8 kHz streams per core, no masking", "streams", "higher", True),
    ("g_daemon_cpu_ms_per_stream_minute_nodtmf", "g. CPU per 8 kHz stream-minute, no masking", "ms", "lower", True),
]

# item g's figures, also gathered per backing under "item_g" in the JSON
G_SUMMARY = [
    "g_writes_per_s_dtmf", "g_writes_per_s_nodtmf", "g_daemon_cpu_s_dtmf", "g_daemon_cpu_s_nodtmf",
    "g_daemon_cpu_ms_per_stream_minute", "g_streams_per_core", "g_dtmf_cpu_ratio", "g_dtmf_writes_ratio",
    "g_daemon_cpu_ms_per_stream_minute_nodtmf", "g_streams_per_core_nodtmf",
]


def fmt(v):
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def stats(values):
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "runs": values,
    }


def cell(st, runs):
    if st is None:
        return "n/a"
    s = f"{fmt(st['median'])} [{fmt(st['min'])}–{fmt(st['max'])}]"
    if st["n"] < runs:
        s += f" n={st['n']}"
    return s


def ratio(a, b):
    if a is None or b is None or b["median"] == 0:
        return None
    return a["median"] / b["median"]


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" not in line:
                continue
            k, v = line.split("=", 1)
            if re.fullmatch(r"-?\d+", v):
                v = int(v)
            meta[k] = v
    return meta


NOISE = [
    re.compile(r"SwitchToSyslog|SwitchLoggerToSyslog"),  # gocryptfs without syslogd
    re.compile(r"--allow-all|no access control", re.I),  # our own choice
    re.compile(r"kdf|argon2.*(memory|tests only)", re.I),  # cheap KDF on purpose
    re.compile(r"^callvaultd: info: "),  # routine start/stop lines
    re.compile(r"^created volume "),  # callvault-keytool init
    re.compile(r"^auditor's journal verification key: "),  # callvault-keytool init
    re.compile(r"warning: --no-audit: "),  # the journal-off mount of item e
]


def line_kind(line):
    """A log line with its numbers blanked, so messages about different files collapse."""
    return re.sub(r"\d+", "N", line)[:300]


def interesting_log_lines(logdir):
    """Lines of the daemons' stderr that are not expected noise, deduplicated with counts."""
    out = {}
    if not logdir or not os.path.isdir(logdir):
        return out
    for name in sorted(os.listdir(logdir)):
        system = name.split("-")[0]
        counts = {}
        with open(os.path.join(logdir, name), errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line or any(p.search(line) for p in NOISE):
                    continue
                key = line_kind(line)
                if key not in counts:
                    counts[key] = [line[:300], 0]
                counts[key][1] += 1
        if counts:
            out.setdefault(system, [])
            for example, n in counts.values():
                out[system].append({"log": name, "count": n, "example": example})
    for system in out:
        out[system] = sorted(out[system], key=lambda e: -e["count"])[:40]
    return out


def build(raw_path, meta_path, logdir):
    meta = read_meta(meta_path)
    records, details, notes = [], [], []
    with open(raw_path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            if "metric" in r:
                records.append(r)
            elif "detail" in r:
                details.append(r)
            elif "note" in r:
                notes.append(r)
    runs = int(meta.get("runs", 1))
    backings = [b for b in BACKINGS if b in str(meta.get("backings", "")).split()]
    systems = [s for s in SYSTEMS if s in str(meta.get("systems", "")).split()]

    def values(metric, backing, system):
        return [r["value"] for r in sorted(records, key=lambda r: r["run"])
                if r["metric"] == metric and r["backing"] == backing and r["system"] == system]

    rows = []
    for metric, label, unit, better, daemons_only in ROWS + EXTRA:
        for backing in backings:
            vals = {}
            shared = {}
            for system in systems:
                if daemons_only and system == "plain":
                    vals[system] = None
                    continue
                src = metric
                if metric == "e_open_per_s_journal_off" and system != "callvault":
                    # plain and gocryptfs have no journal: the same measurement as "on"
                    src = "e_open_per_s"
                    shared[system] = True
                vals[system] = stats(values(src, backing, system))
            rows.append({
                "metric": metric, "label": label, "unit": unit, "better": better,
                "backing": backing, "printed": metric in [r[0] for r in ROWS],
                "values": vals,
                "same_as_journal_on": sorted(shared),
                "ratio_callvault_gocryptfs": ratio(vals.get("callvault"), vals.get("gocryptfs")),
                "ratio_callvault_plain": ratio(vals.get("callvault"), vals.get("plain")),
            })
    return meta, rows, records, details, notes, runs, systems, backings


def item_g(rows, backing):
    """Medians of item g's metrics for callvault on one backing (None where missing)."""
    out = {}
    for metric in G_SUMMARY:
        r = next((r for r in rows if r["metric"] == metric and r["backing"] == backing), None)
        st = r["values"].get("callvault") if r else None
        out[metric] = st["median"] if st else None
    return out


def render(meta, rows, records, notes, runs, systems, backings, logs):
    out = []
    p = out.append
    p(f"callvault benchmark {meta.get('timestamp', '')}: {runs} interleaved run(s)"
      f"{' (BENCH_QUICK: reduced sizes)' if str(meta.get('quick')) == '1' else ''}")
    p(f"host: {meta.get('cpu', '?')}, {meta.get('cpus', '?')} CPUs, "
      f"{int(meta.get('mem_kib', 0)) // 1048576} GiB, kernel {meta.get('kernel', '?')}; "
      f"disk {meta.get('disk_fs', '?')}")
    p(f"callvault: {meta.get('callvaultd_version', '?')} (binary {meta.get('callvault_bin_dir', '?')}, "
      f"sha256 {meta.get('callvaultd_sha256', '?')}, built {meta.get('callvaultd_mtime', '?')}); "
      f"repo HEAD {meta.get('repo_head', '?')} with {meta.get('repo_dirty_files', '?')} changed files"
      f"{' (binaries not built by this run)' if meta.get('callvault_prebuilt') == 'yes' else ''}; "
      f"extra args '{meta.get('callvaultd_extra_args', '')}'")
    p(f"peers: {meta.get('gocryptfs', '?')}; {meta.get('fio', '?')}")
    seq_mib = int(meta.get("seq_bytes", 0)) // 1048576
    p(f"sizes: a/b {seq_mib} MiB; c/f {meta.get('rec_files')} files x "
      f"{int(meta.get('rec_bytes_per_file', 0)) // 1024} KiB in {meta.get('rec_frame_bytes')} B writes; "
      f"d {meta.get('meta_files')} files; e {meta.get('open_files')} files x {meta.get('open_rounds')} opens; "
      f"g as c, with a 44-byte stereo 8 kHz µ-law WAV header, '{meta.get('dtmf_args', '')}' against none")
    p("cells: median [min–max] over runs; ratios are of medians (higher is better for rates,"
      " lower for CPU and memory)")
    p("")
    headers = ["workload", "backing", "unit"] + systems
    if "callvault" in systems and "gocryptfs" in systems:
        headers.append("cv/gocryptfs")
    if "callvault" in systems and "plain" in systems:
        headers.append("cv/plain")
    table = []
    for r in rows:
        if not r["printed"]:
            continue
        label = r["label"]
        if r["metric"] == "f_rss_MiB" and meta.get("rec_files"):
            label = f"f. daemon RSS, {meta['rec_files']:,} files open"
        line = [label, r["backing"], r["unit"]]
        for s in systems:
            c = cell(r["values"].get(s), runs)
            if s in r["same_as_journal_on"] and c != "n/a":
                c += " *"
            line.append(c)
        if "cv/gocryptfs" in headers:
            x = r["ratio_callvault_gocryptfs"]
            line.append("n/a" if x is None else f"{x:.2f}")
        if "cv/plain" in headers:
            x = r["ratio_callvault_plain"]
            line.append("n/a" if x is None else f"{x:.2f}")
        table.append(line)
    widths = [max(len(h), *(len(l[i]) for l in table)) if table else len(h)
              for i, h in enumerate(headers)]
    p("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    p("  ".join("-" * w for w in widths))
    prev = None
    for l in table:
        wl = l[0].split(".")[0]
        if prev is not None and wl != prev:
            p("")
        prev = wl
        p("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(l, widths))).rstrip())
    p("")
    p("* no audit journal in this system: the same measurement as the journal-on row.")
    avail = meta.get("journal_off_available")
    if "callvault" in systems:
        if avail == "no":
            p(f"e. journal off: not available (callvaultd rejected '{meta.get('journal_off_args')}' with exit 2).")
        else:
            for b in backings:
                on = next((r for r in rows if r["metric"] == "e_open_per_s" and r["backing"] == b), None)
                off = next((r for r in rows if r["metric"] == "e_open_per_s_journal_off" and r["backing"] == b), None)
                x = ratio(on["values"].get("callvault") if on else None, off["values"].get("callvault") if off else None)
                if x is not None:
                    p(f"e. callvault journal on/off ({b}): {x:.2f} of the opens/s kept with the journal on")
    if "callvault" in systems:
        if meta.get("dtmf_available") == "no":
            p(f"g. DTMF masking: not available (callvaultd rejected '{meta.get('dtmf_args')}' with exit 2); item g skipped.")
        else:
            for b in backings:
                g = item_g(rows, b)
                if g.get("g_streams_per_core") is None:
                    continue
                line = (f"g. callvault DTMF masking ({b}): {fmt(g['g_daemon_cpu_ms_per_stream_minute'])} ms of daemon CPU "
                        f"per minute of 8 kHz stream, so one core keeps up with {g['g_streams_per_core']:.0f} "
                        f"real-time streams")
                if g.get("g_streams_per_core_nodtmf") is not None:
                    line += f" ({g['g_streams_per_core_nodtmf']:.0f} without masking)"
                if g.get("g_dtmf_cpu_ratio") is not None:
                    line += f"; masking costs {g['g_dtmf_cpu_ratio']:.2f}x the daemon CPU"
                if g.get("g_dtmf_writes_ratio") is not None:
                    line += f" and keeps {g['g_dtmf_writes_ratio']:.2f} of the writes/s"
                p(line + " (medians of same-run ratios)")
    cpu_lines = []
    for metric, what in [("a_daemon_cpu_s_per_GB", "a (sequential)"), ("c_daemon_cpu_s_per_GB", "c (recorder)")]:
        for b in backings:
            r = next((r for r in rows if r["metric"] == metric and r["backing"] == b), None)
            if not r:
                continue
            parts = [f"{s} {fmt(r['values'][s]['median'])}" for s in systems
                     if s != "plain" and r["values"].get(s)]
            if parts:
                cpu_lines.append(f"  {what}, {b}: " + ", ".join(parts))
    if cpu_lines:
        p("daemon CPU seconds per GB written (median):")
        out.extend(cpu_lines)
    other = [r for r in records if r["metric"].startswith("other_load_")]
    if other:
        vals = sorted(r["value"] for r in other)
        worst = max(other, key=lambda r: r["value"])
        steal = [r["value"] for r in records if r["metric"].startswith("steal_")]
        thr = float(meta.get("contention_warn", 0.1))
        p(f"other load (CPU used outside the benchmark while a step ran, share of all {meta.get('cpus', '?')} CPUs): "
          f"median {statistics.median(vals) * 100:.1f}%, max {worst['value'] * 100:.0f}% "
          f"(step {worst['metric'][len('other_load_'):]}, run {worst['run']}, {worst['backing']}, {worst['system']}); "
          f"{sum(v > thr for v in vals)} of {len(vals)} steps above {thr * 100:.0f}%"
          + (f"; steal max {max(steal) * 100:.1f}%" if steal else ""))
    busy = [n for n in notes if "other processes used" in n["note"]]
    notes = [n for n in notes if "other processes used" not in n["note"]]
    if busy:
        p(f"steps during which other processes used more than {float(meta.get('contention_warn', 0.1)) * 100:.0f}% "
          f"of the CPU ({len(busy)}; their numbers may be low):")
        by_run = {}
        for n in busy:
            m = re.match(r"step '([^']+)': other processes used (\d+)%", n["note"])
            if m:
                by_run.setdefault(n["run"], []).append(f"{n['backing']}/{n['system']}/{m.group(1)} {m.group(2)}%")
        for run in sorted(by_run):
            p(f"  run {run}: " + ", ".join(by_run[run]))
    if notes:
        p("")
        p(f"notes ({len(notes)}):")
        seen = set()
        for n in notes:
            key = (n["system"], n["backing"], n["note"])
            if key in seen:
                continue
            seen.add(key)
            p(f"  run {n['run']} {n['backing']} {n['system']}: {n['note']}")
    if logs:
        p("")
        p("daemon stderr (unexpected lines, deduplicated; all in the JSON):")
        for system, entries in logs.items():
            # The same line from several daemons' logs is printed once, with
            # the total count and in how many logs it appeared.
            merged = {}
            for e in entries:
                m = merged.setdefault(line_kind(e["example"]), [e["example"], 0, 0])
                m[1] += e["count"]
                m[2] += 1
            for example, count, nlogs in sorted(merged.values(), key=lambda m: -m[1])[:8]:
                where = f" (in {nlogs} logs)" if nlogs > 1 else ""
                p(f"  {system} x{count}{where}: {example}")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw")
    ap.add_argument("--meta")
    ap.add_argument("--logs")
    ap.add_argument("--out")
    ap.add_argument("--json", help="print the table of an earlier results file")
    a = ap.parse_args()
    if a.json:
        with open(a.json) as f:
            sys.stdout.write(json.load(f)["table"])
        return
    if not (a.raw and a.meta and a.out):
        ap.error("--raw, --meta and --out are required")
    meta, rows, records, details, notes, runs, systems, backings = build(a.raw, a.meta, a.logs)
    logs = interesting_log_lines(a.logs)
    text = render(meta, rows, records, notes, runs, systems, backings, logs)
    sys.stdout.write(text)
    result = {
        "schema": "callvault-bench/1",
        "meta": meta,
        "table": text,
        "rows": rows,
        "raw": records,
        "details": details,
        "notes": notes,
        "daemon_log": logs,
        "item_g": {b: item_g(rows, b) for b in backings} if "callvault" in systems else {},
    }
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
