/*
 * metadata: the metadata workloads of the callvault benchmark (items d and e).
 *
 *   metadata DIR [--files N] [--rounds R] PHASE[,PHASE...]
 *
 * All names are f000000 .. f(N-1) directly in DIR, reached through a directory
 * fd (openat/fstatat/unlinkat), so path walking of the mount prefix is not
 * measured. Phases run in the order given, each timed on its own:
 *
 *   create  openat(O_CREAT|O_EXCL|O_WRONLY, 0644) + close of each name
 *   stat    fstatat of each name
 *   list    one opendir/readdir pass over DIR; counts the entries (without
 *           "." and ".."), fails if the count is not N; rate = entries/s
 *   open    R rounds of openat(O_RDONLY) + close over the N names; ops = N*R
 *   unlink  unlinkat of each name
 *
 * Output: one JSON object on stdout, {"PHASE": {"ops": .., "s": .., "ops_per_s": ..}, ...}.
 * Exit 0 on success, 1 on an error (JSON then carries "error"), 2 on bad usage.
 *
 * Build: gcc -O2 -Wall -o metadata metadata.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int first_output = 1;

static void die_json(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "metadata: %s\n", msg);
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = ' ';
    printf("%s\"error\": \"%s\"}\n", first_output ? "{" : ", ", msg);
    exit(1);
}

static void report(const char *phase, long ops, double s)
{
    printf("%s\"%s\": {\"ops\": %ld, \"s\": %.6f, \"ops_per_s\": %.1f}",
           first_output ? "{" : ", ", phase, ops, s, s > 0 ? ops / s : 0.0);
    first_output = 0;
    fflush(stdout);
}

static void usage(void)
{
    fprintf(stderr, "usage: metadata DIR [--files N] [--rounds R] PHASE[,PHASE...]\n"
                    "phases: create stat list open unlink\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *phases = NULL;
    long n = 10000, rounds = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--files") && i + 1 < argc) n = atol(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atol(argv[++i]);
        else if (argv[i][0] == '-') usage();
        else if (!dir) dir = argv[i];
        else if (!phases) phases = argv[i];
        else usage();
    }
    if (!dir || !phases || n < 1 || rounds < 1) usage();

    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) die_json("open %s: %s", dir, strerror(errno));

    char *list = strdup(phases), *save = NULL;
    char name[32];
    for (char *ph = strtok_r(list, ",", &save); ph; ph = strtok_r(NULL, ",", &save)) {
        double t0 = now();
        long ops = 0;
        if (!strcmp(ph, "create")) {
            for (long i = 0; i < n; i++, ops++) {
                snprintf(name, sizeof name, "f%06ld", i);
                int fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
                if (fd < 0) die_json("create %s/%s: %s", dir, name, strerror(errno));
                if (close(fd) < 0) die_json("close %s/%s: %s", dir, name, strerror(errno));
            }
        } else if (!strcmp(ph, "stat")) {
            struct stat st;
            for (long i = 0; i < n; i++, ops++) {
                snprintf(name, sizeof name, "f%06ld", i);
                if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                    die_json("stat %s/%s: %s", dir, name, strerror(errno));
            }
        } else if (!strcmp(ph, "list")) {
            int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (lfd < 0) die_json("open %s: %s", dir, strerror(errno));
            DIR *d = fdopendir(lfd);
            if (!d) die_json("fdopendir %s: %s", dir, strerror(errno));
            struct dirent *e;
            errno = 0;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) ops++;
                errno = 0;
            }
            if (errno) die_json("readdir %s: %s", dir, strerror(errno));
            closedir(d);
            if (ops != n) die_json("list %s: %ld entries, expected %ld", dir, ops, n);
        } else if (!strcmp(ph, "open")) {
            for (long r = 0; r < rounds; r++)
                for (long i = 0; i < n; i++, ops++) {
                    snprintf(name, sizeof name, "f%06ld", i);
                    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
                    if (fd < 0) die_json("open %s/%s: %s", dir, name, strerror(errno));
                    if (close(fd) < 0) die_json("close %s/%s: %s", dir, name, strerror(errno));
                }
        } else if (!strcmp(ph, "unlink")) {
            for (long i = 0; i < n; i++, ops++) {
                snprintf(name, sizeof name, "f%06ld", i);
                if (unlinkat(dfd, name, 0) < 0)
                    die_json("unlink %s/%s: %s", dir, name, strerror(errno));
            }
        } else {
            usage();
        }
        report(ph, ops, now() - t0);
    }
    printf("%s}\n", first_output ? "{" : "");
    return 0;
}
