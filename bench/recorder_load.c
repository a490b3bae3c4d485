/*
 * recorder_load: the "call recorder" workload of the callvault benchmark (item c),
 * also used to hold 1,000 files open while the daemon's memory is sampled (item f).
 *
 * Opens N files at once (O_WRONLY|O_CREAT|O_APPEND|O_TRUNC) in DIR, then appends
 * one FRAME-byte write to each file in turn (round-robin), like a recorder
 * serving N concurrent calls with one 20 ms stereo G.711 frame (320 bytes) per
 * call per tick, until every file holds SIZE bytes; then closes them all.
 * There is no pacing: it writes as fast as the filesystem accepts, so the
 * result is the ceiling of sustainable 16 kB/s real-time streams.
 *
 * With --hold-fifo PATH it stops once every file is open and half written,
 * prints "holding" on stderr, and waits until a byte can be read from the
 * FIFO PATH (the benchmark samples the daemon's VmRSS meanwhile). The time
 * spent holding is excluded from the timings.
 *
 * With --wav (item g) the files are named call-NNNNNN.wav and each starts
 * with a 44-byte WAV header written right after open: RIFF/WAVE, a fmt chunk
 * of WAVE_FORMAT_MULAW (7), 2 channels, 8000 Hz, block_align 2, 8 bits, and
 * RIFF and data sizes 0xFFFFFFFF as a streaming recorder writes them (the data
 * runs to the end of the file). The frames follow unchanged: a 320-byte frame
 * is 160 stereo µ-law samples, 20 ms. "writes" and the rates count the frame
 * writes only (the header write is part of the open phase); "bytes" is the
 * frame bytes. "audio_stream_seconds" is files x 2 channels x frames x
 * (FRAME / 16000) s, i.e. the 8 kHz mono streams' total length.
 * Without --wav the files are call-NNNNNN.raw with no header (item c).
 *
 * After the timed part it checks every file's size with stat (frames plus the
 * header with --wav) and, with --verify (default on), reads back the first
 * and the last file and compares every byte (the header, then every frame:
 * each frame carries its file and frame number).
 *
 * Output: one JSON object on stdout. Exit 0 on success, 1 on any I/O error
 * or verification failure (the JSON then carries "error"), 2 on bad usage.
 *
 * Build: gcc -O2 -Wall -o recorder_load recorder_load.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double tv(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

static void die_json(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "recorder_load: %s\n", msg);
    /* keep the message JSON-safe */
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = ' ';
    printf("{\"error\": \"%s\"}\n", msg);
    exit(1);
}

/* Frame contents: a G.711-ish byte pattern stamped with file and frame number,
 * so misplaced, reordered or lost frames are detected on read-back. */
static void fill_frame(unsigned char *buf, size_t frame, uint32_t file, uint32_t seq)
{
    for (size_t i = 0; i < frame; i++)
        buf[i] = (unsigned char)(0xd5 ^ (i * 31 + file * 7 + seq * 13));
    if (frame >= 8) {
        memcpy(buf, &file, 4);
        memcpy(buf + 4, &seq, 4);
    }
}

static int full_write(int fd, const unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) { errno = EIO; return -1; }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Streaming WAV header: G.711 µ-law, stereo, 8 kHz, sizes unknown (0xFFFFFFFF). */
#define WAV_HEADER_BYTES 44
#define WAV_CHANNELS 2
#define WAV_RATE 8000

static void put16(unsigned char *p, uint16_t v) { p[0] = v & 0xff; p[1] = v >> 8; }
static void put32(unsigned char *p, uint32_t v)
{
    p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; p[2] = (v >> 16) & 0xff; p[3] = v >> 24;
}

static void wav_header(unsigned char h[WAV_HEADER_BYTES])
{
    memcpy(h, "RIFF", 4);
    put32(h + 4, 0xFFFFFFFFu);               /* RIFF size: streaming */
    memcpy(h + 8, "WAVE", 4);
    memcpy(h + 12, "fmt ", 4);
    put32(h + 16, 16);                       /* fmt chunk size */
    put16(h + 20, 7);                        /* WAVE_FORMAT_MULAW */
    put16(h + 22, WAV_CHANNELS);
    put32(h + 24, WAV_RATE);
    put32(h + 28, WAV_RATE * WAV_CHANNELS);  /* byte rate: 1 byte per sample */
    put16(h + 32, WAV_CHANNELS);             /* block align */
    put16(h + 34, 8);                        /* bits per sample */
    memcpy(h + 36, "data", 4);
    put32(h + 40, 0xFFFFFFFFu);              /* data size: streaming */
}

static void usage(void)
{
    fprintf(stderr,
            "usage: recorder_load DIR [--files N] [--frame BYTES] [--size BYTES]\n"
            "                     [--hold-fifo PATH] [--no-verify] [--wav]\n"
            "defaults: --files 1000 --frame 320 --size 327680 (320 KiB)\n"
            "--size is the frame bytes per file; --wav adds a 44-byte WAV header\n"
            "(with --wav, --frame must be a multiple of 2)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *hold_fifo = NULL;
    long nfiles = 1000, frame = 320, size = 320 * 1024;
    int verify = 1, wav = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--files") && i + 1 < argc) nfiles = atol(argv[++i]);
        else if (!strcmp(argv[i], "--frame") && i + 1 < argc) frame = atol(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atol(argv[++i]);
        else if (!strcmp(argv[i], "--hold-fifo") && i + 1 < argc) hold_fifo = argv[++i];
        else if (!strcmp(argv[i], "--no-verify")) verify = 0;
        else if (!strcmp(argv[i], "--wav")) wav = 1;
        else if (argv[i][0] == '-') usage();
        else if (!dir) dir = argv[i];
        else usage();
    }
    if (!dir || nfiles < 1 || frame < 1 || size < frame || size % frame) usage();
    if (wav && frame % WAV_CHANNELS) usage();
    long rounds = size / frame;
    const char *ext = wav ? "wav" : "raw";
    long header = wav ? WAV_HEADER_BYTES : 0;
    unsigned char hdr[WAV_HEADER_BYTES];
    wav_header(hdr);

    /* 1,000 files plus stdio need more than some default soft limits. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nfiles + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int *fds = calloc((size_t)nfiles, sizeof *fds);
    unsigned char *buf = malloc((size_t)frame);
    char path[4096];
    if (!fds || !buf) die_json("out of memory");

    double hold_s = 0;
    double t0 = now();
    for (long f = 0; f < nfiles; f++) {
        snprintf(path, sizeof path, "%s/call-%06ld.%s", dir, f, ext);
        fds[f] = open(path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0644);
        if (fds[f] < 0) die_json("open %s: %s (after %ld files)", path, strerror(errno), f);
        if (wav && full_write(fds[f], hdr, WAV_HEADER_BYTES) < 0)
            die_json("write WAV header of file %ld: %s", f, strerror(errno));
    }
    double t_opened = now();

    for (long r = 0; r < rounds; r++) {
        if (hold_fifo && r == rounds / 2) {
            double h0 = now();
            fprintf(stderr, "holding\n");
            fflush(stderr);
            int ff = open(hold_fifo, O_RDONLY | O_CLOEXEC);
            if (ff < 0) die_json("open hold fifo %s: %s", hold_fifo, strerror(errno));
            char c;
            while (read(ff, &c, 1) < 0 && errno == EINTR) {}
            close(ff);
            hold_s = now() - h0;
        }
        for (long f = 0; f < nfiles; f++) {
            fill_frame(buf, (size_t)frame, (uint32_t)f, (uint32_t)r);
            if (full_write(fds[f], buf, (size_t)frame) < 0)
                die_json("write file %ld frame %ld: %s", f, r, strerror(errno));
        }
    }
    double t_written = now();

    for (long f = 0; f < nfiles; f++) {
        if (close(fds[f]) < 0)
            die_json("close file %ld: %s", f, strerror(errno));
    }
    double t_closed = now();

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);

    /* Untimed checks. */
    long bad_sizes = 0, first_bad = -1;
    for (long f = 0; f < nfiles; f++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/call-%06ld.%s", dir, f, ext);
        if (stat(path, &st) < 0 || st.st_size != size + header) {
            if (first_bad < 0) first_bad = f;
            bad_sizes++;
        }
    }
    long bad_frames = 0, bad_headers = 0;
    if (verify) {
        unsigned char *rb = malloc((size_t)frame);
        if (!rb) die_json("out of memory");
        long check[2] = {0, nfiles - 1};
        for (int k = 0; k < (nfiles > 1 ? 2 : 1); k++) {
            snprintf(path, sizeof path, "%s/call-%06ld.%s", dir, check[k], ext);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) die_json("verify open %s: %s", path, strerror(errno));
            if (wav) {
                unsigned char rh[WAV_HEADER_BYTES];
                ssize_t got = 0;
                while (got < WAV_HEADER_BYTES) {
                    ssize_t n = read(fd, rh + got, (size_t)(WAV_HEADER_BYTES - got));
                    if (n < 0 && errno == EINTR) continue;
                    if (n <= 0) break;
                    got += n;
                }
                if (got != WAV_HEADER_BYTES || memcmp(rh, hdr, WAV_HEADER_BYTES)) bad_headers++;
                /* frames are compared from byte 44 on, whatever the header read gave */
                if (lseek(fd, WAV_HEADER_BYTES, SEEK_SET) < 0)
                    die_json("verify lseek %s: %s", path, strerror(errno));
            }
            for (long r = 0; r < rounds; r++) {
                ssize_t got = 0;
                while (got < frame) {
                    ssize_t n = read(fd, rb + got, (size_t)(frame - got));
                    if (n < 0 && errno == EINTR) continue;
                    if (n <= 0) break;
                    got += n;
                }
                fill_frame(buf, (size_t)frame, (uint32_t)check[k], (uint32_t)r);
                if (got != frame || memcmp(rb, buf, (size_t)frame)) bad_frames++;
            }
            close(fd);
        }
        free(rb);
    }

    long writes = nfiles * rounds;
    double bytes = (double)writes * frame;
    double elapsed = (t_closed - t0) - hold_s;
    double write_s = (t_written - t_opened) - hold_s;
    double cpu_user = tv(ru.ru_utime), cpu_sys = tv(ru.ru_stime);
    char wavjson[160] = "";
    if (wav)
        snprintf(wavjson, sizeof wavjson,
                 ", \"header_bytes\": %d, \"channels\": %d, \"sample_rate\": %d, "
                 "\"audio_stream_seconds\": %.3f, \"bad_headers\": %ld",
                 WAV_HEADER_BYTES, WAV_CHANNELS, WAV_RATE,
                 (double)nfiles * WAV_CHANNELS * rounds * ((double)frame / (WAV_CHANNELS * WAV_RATE)),
                 bad_headers);
    printf("{\"files\": %ld, \"frame_bytes\": %ld, \"bytes_per_file\": %ld, "
           "\"writes\": %ld, \"bytes\": %.0f, "
           "\"elapsed_s\": %.6f, \"open_s\": %.6f, \"write_s\": %.6f, \"close_s\": %.6f, "
           "\"hold_s\": %.6f, \"writes_per_s\": %.1f, \"bytes_per_s\": %.1f, "
           "\"streams_16kBps\": %.1f, \"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f, "
           "\"cpu_s\": %.3f, \"bad_sizes\": %ld, \"first_bad_size_file\": %ld, "
           "\"verified_files\": %d, \"bad_frames\": %ld, \"wav\": %s%s}\n",
           nfiles, frame, size, writes, bytes,
           elapsed, t_opened - t0, write_s, t_closed - t_written,
           hold_s, writes / elapsed, bytes / elapsed,
           bytes / elapsed / 16000.0, cpu_user, cpu_sys, cpu_user + cpu_sys,
           bad_sizes, first_bad, verify ? (nfiles > 1 ? 2 : 1) : 0, bad_frames,
           wav ? "true" : "false", wavjson);
    if (bad_sizes || bad_frames || bad_headers) {
        fprintf(stderr, "recorder_load: verification failed: %ld files with wrong size, %ld bad frames, "
                "%ld bad WAV headers\n", bad_sizes, bad_frames, bad_headers);
        return 1;
    }
    return 0;
}
