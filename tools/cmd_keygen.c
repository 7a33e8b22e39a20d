/*  cmd_keygen.c: `zkit keygen`, makes a CURVE keypair as two zcert files.

    NAME holds the public key (zcert_save_public format: hand it to peers,
    put it in their --curve-allow directory); NAME_secret holds both keys and
    is created with mode 0600 from the start, never widened. Each file is
    written under a temporary name in the same directory and then linked
    into place, so an existing key is never half-overwritten: without
    --force an existing NAME or NAME_secret is an error, with --force both
    are replaced atomically one after the other.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "zkit_cli.h"

#define S_CMD      "keygen"
#define S_NAME_MAX 200

static const char s_usage_text[] =
    "usage: zkit keygen NAME [--dir DIR] [--force]\n"
    "\n"
    "Makes a CURVE keypair for zkit's --curve-* options and prints its public\n"
    "key (Z85) on stdout:\n"
    "  DIR/NAME         the public certificate: give it to peers (a server's to\n"
    "                   its clients for --curve-server, a client's to the server's\n"
    "                   --curve-allow directory)\n"
    "  DIR/NAME_secret  the keypair (mode 0600): this process's --curve-secret;\n"
    "                   it never leaves this host\n"
    "\n"
    "options:\n"
    "  -d, --dir DIR   where to write (default: the current directory); it must\n"
    "                  exist\n"
    "      --force     replace existing files of that NAME\n"
    "  -h, --help      this text\n"
    "\n"
    "exit status: 0 written, 1 the files exist (without --force) or cannot be\n"
    "written, 2 usage.\n";

static int s_usage_error(const char *format, const char *arg)
{
    fprintf(stderr, "zkit " S_CMD ": ");
    fprintf(stderr, format, arg);
    fprintf(stderr, " (see 'zkit " S_CMD " --help')\n");
    return ZKIT_EXIT_USAGE;
}

/*  A file name of our own: no '/', not hidden, printable, not too long.  */
static bool s_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > S_NAME_MAX || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] == '/' || (unsigned char) name[i] < 0x20 || name[i] == 0x7f)
            return false;
    return true;
}

/*  Writes cert (the secret form when secret) to a new temporary file in dir
    whose mode is mode from the moment it exists. Returns 0 and the name in
    tmp, or -1 with errno.                                                  */
static int s_write_temp(zcert_t *cert, bool secret, const char *dir, const char *name, mode_t mode,
                        char *tmp, size_t tmp_size)
{
    int n = snprintf(tmp, tmp_size, "%s/.%s.zkit-keygen.XXXXXX", dir, name);
    if (n < 0 || (size_t) n >= tmp_size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkstemp(tmp); /* 0600, whatever the umask */
    if (fd == -1)
        return -1;
    if (fchmod(fd, mode) == -1) {
        int err = errno;
        close(fd);
        unlink(tmp);
        errno = err;
        return -1;
    }
    close(fd);
    /* zcert opens the existing file for writing: the mode stays. */
    int rc = secret ? zcert_save_secret(cert, tmp) : zcert_save_public(cert, tmp);
    if (rc == 0) {
        fd = open(tmp, O_RDONLY | O_CLOEXEC);
        rc = fd == -1 || fsync(fd) == -1 ? -1 : 0;
        if (fd != -1)
            close(fd);
    }
    if (rc != 0) {
        int err = errno ? errno : EIO;
        unlink(tmp);
        errno = err;
        return -1;
    }
    return 0;
}

/*  Moves tmp to final: rename (replacing) with force, else link (failing
    with EEXIST when final exists). tmp is gone afterwards either way.     */
static int s_install(const char *tmp, const char *final, bool force)
{
    int rc = force ? rename(tmp, final) : link(tmp, final);
    int err = errno;
    if (!force || rc == -1)
        unlink(tmp);
    errno = err;
    return rc;
}

int zkit_cmd_keygen(int argc, char **argv)
{
    static const struct option longs[] = {
        {"dir", required_argument, NULL, 'd'},
        {"force", no_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = ".";
    bool force = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":d:h", longs, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'F': force = true; break;
        case 'h': fputs(s_usage_text, stdout); return ZKIT_EXIT_OK;
        case ':': return s_usage_error("%s needs a value", argv[optind - 1]);
        default: return s_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return s_usage_error("%s", optind < argc ? "exactly one NAME, please" : "missing NAME");
    const char *name = argv[optind];
    if (!s_valid_name(name))
        return s_usage_error("'%s' is not a usable file name (no '/', not hidden, at most 200 "
                             "bytes)",
                             name);
    struct stat st;
    if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "zkit " S_CMD ": %s is not a directory\n", dir);
        return ZKIT_EXIT_FAILURE;
    }
    char public_path[PATH_MAX], secret_path[PATH_MAX];
    int n1 = snprintf(public_path, sizeof public_path, "%s/%s", dir, name);
    int n2 = snprintf(secret_path, sizeof secret_path, "%s/%s_secret", dir, name);
    if (n1 < 0 || n2 < 0 || (size_t) n2 >= sizeof secret_path) {
        fprintf(stderr, "zkit " S_CMD ": path too long\n");
        return ZKIT_EXIT_USAGE;
    }
    if (!force) {
        const char *paths[2] = {public_path, secret_path};
        for (int i = 0; i < 2; i++)
            if (lstat(paths[i], &st) == 0) {
                fprintf(stderr, "zkit " S_CMD ": %s exists; use --force to replace it\n", paths[i]);
                return ZKIT_EXIT_FAILURE;
            }
    }

    zsys_init();
    zcert_t *cert = zcert_new();
    if (!cert) {
        fprintf(stderr, "zkit " S_CMD ": cannot make a keypair\n");
        return ZKIT_EXIT_FAILURE;
    }
    zcert_set_meta(cert, "name", "%s", name);
    char secret_tmp[PATH_MAX], public_tmp[PATH_MAX];
    int rc = ZKIT_EXIT_FAILURE;
    if (s_write_temp(cert, true, dir, name, 0600, secret_tmp, sizeof secret_tmp) == -1) {
        fprintf(stderr, "zkit " S_CMD ": cannot write in %s: %s\n", dir, strerror(errno));
        goto done;
    }
    if (s_write_temp(cert, false, dir, name, 0644, public_tmp, sizeof public_tmp) == -1) {
        fprintf(stderr, "zkit " S_CMD ": cannot write in %s: %s\n", dir, strerror(errno));
        unlink(secret_tmp);
        goto done;
    }
    /* The secret first: a public key without its secret would be useless. */
    if (s_install(secret_tmp, secret_path, force) == -1) {
        fprintf(stderr, "zkit " S_CMD ": cannot create %s: %s\n", secret_path, strerror(errno));
        unlink(public_tmp);
        goto done;
    }
    if (s_install(public_tmp, public_path, force) == -1) {
        fprintf(stderr, "zkit " S_CMD ": cannot create %s: %s\n", public_path, strerror(errno));
        if (!force)
            unlink(secret_path); /* ours, made a moment ago */
        goto done;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd != -1) {
        fsync(dfd); /* the new names survive a crash */
        close(dfd);
    }
    printf("%s\n", zcert_public_txt(cert));
    fflush(stdout);
    fprintf(stderr, "zkit " S_CMD ": wrote %s (public) and %s (secret, mode 0600)\n", public_path,
            secret_path);
    rc = ZKIT_EXIT_OK;
done:
    zcert_destroy(&cert);
    return rc;
}
