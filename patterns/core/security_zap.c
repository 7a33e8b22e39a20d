/*  security_zap.c: the process's one ZAP handler and the allow directory
    behind it (see security_zap.h and docs/security.md).

    The process-wide part is a small actor, the "auth manager": it owns the
    one zauth actor, keeps zauth's private certificate directory in step with
    the operator's allow directory (polled on a timer, or on RELOAD), and is
    the only thread that ever talks to zauth, whose pipe is not thread-safe.
    The manager and zauth run with the termination signals blocked, so an
    interrupted system call never ends them early.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/security_zap.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_ZAP_ENDPOINT      "inproc://zeromq.zap.01"
#define S_CERT_MAX_SIZE     65536 /* a certificate file is a few hundred bytes */
#define S_MAX_KEYS          65536 /* keys taken from one allow directory       */
#define S_MAX_ADDRESSES     256   /* addresses in one IP list                  */
#define S_DEFAULT_RELOAD_MS 1000

/* ---- certificate files ---------------------------------------------------------- */

/*  True when text is a 40-character Z85 key that decodes and is not zero. */
static bool s_key_valid(const char *text, uint8_t out[32])
{
    if (!text || strlen(text) != 40 || !zmq_z85_decode(out, text))
        return false;
    uint8_t any = 0;
    for (int i = 0; i < 32; i++)
        any |= out[i];
    return any != 0;
}

int zkit__security_read_cert(const char *path, char public_txt[41], uint8_t secret_bin[32])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    struct stat st;
    int err = fstat(fd, &st) == -1           ? errno
              : !S_ISREG(st.st_mode)         ? EISDIR
              : st.st_size > S_CERT_MAX_SIZE ? EFBIG
                                             : 0;
    if (err) {
        close(fd);
        errno = err;
        return -1;
    }
    char buf[S_CERT_MAX_SIZE + 1];
    size_t size = 0;
    while (size < sizeof buf - 1) {
        ssize_t n = read(fd, buf + size, sizeof buf - 1 - size);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size += (size_t) n;
    }
    close(fd);
    buf[size] = '\0';
    int rc = -1;
    zconfig_t *root = zconfig_str_load(buf);
    uint8_t key[32];
    if (root) {
        const char *pub = zconfig_get(root, "curve/public-key", NULL);
        const char *sec = zconfig_get(root, "curve/secret-key", NULL);
        if (s_key_valid(pub, key) && (!secret_bin || s_key_valid(sec, secret_bin))) {
            memcpy(public_txt, pub, 41);
            rc = 0;
        }
        zconfig_destroy(&root);
    }
    /* The buffer may hold a secret key: leave nothing on the stack. */
    explicit_bzero(buf, size);
    if (rc == -1)
        errno = EINVAL;
    return rc;
}

static void s_hex(const uint8_t *data, size_t size, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * size] = '\0';
}

/* ---- IP lists ------------------------------------------------------------------- */

/*  Parses a comma-separated list of IPv4/IPv6 addresses into *out, the same
    addresses joined by commas (spaces dropped). "" for NULL. Returns 0, or
    -1 with errno EINVAL and a log line naming the bad entry.               */
static int s_parse_addresses(const char *list, const char *option, char **out)
{
    *out = strdup(list ? list : "");
    if (!*out) {
        errno = ENOMEM;
        return -1;
    }
    char *write = *out;
    const char *p = list ? list : "";
    size_t count = 0;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        size_t n = (size_t) (p - start);
        if (n == 0)
            continue;
        char address[INET6_ADDRSTRLEN + 1];
        unsigned char bin[sizeof(struct in6_addr)];
        if (n >= sizeof address || ++count > S_MAX_ADDRESSES)
            goto bad;
        memcpy(address, start, n);
        address[n] = '\0';
        if (inet_pton(AF_INET, address, bin) != 1 && inet_pton(AF_INET6, address, bin) != 1)
            goto bad;
        if (write != *out)
            *write++ = ',';
        memcpy(write, address, n);
        write += n;
        continue;
    bad:
        zsys_error("ZKIT-SECURITY-OPTIONS: %s: '%.*s' is not an IP address (or too many)", option,
                   (int) (n > 64 ? 64 : n), start);
        free(*out);
        *out = NULL;
        errno = EINVAL;
        return -1;
    }
    *write = '\0';
    return 0;
}

/* ---- the auth manager (process-wide) -------------------------------------------- */

typedef struct {
    char *allow; /* "" none, "*" any key, else the directory's real path */
    char *ip_allow;
    char *ip_deny;
    int reload_ms;
} s_config_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static zactor_t *s_manager = NULL; /* guarded by s_lock, as are the two below */
static int s_refs = 0;
static s_config_t s_active = {NULL, NULL, NULL, 0};

static void s_config_free(s_config_t *config)
{
    free(config->allow);
    free(config->ip_allow);
    free(config->ip_deny);
    memset(config, 0, sizeof *config);
}

static bool s_config_equal(const s_config_t *a, const s_config_t *b)
{
    return !strcmp(a->allow, b->allow) && !strcmp(a->ip_allow, b->ip_allow) &&
           !strcmp(a->ip_deny, b->ip_deny);
}

typedef struct {
    s_config_t config;
    zactor_t *zauth;
    char root[512];  /* private 0700 directory */
    char certs[520]; /* what zauth reads: one file per key */
    char tmp[520];   /* where files are written before the rename */
    zhashx_t *keys;  /* Z85 keys now in certs */
    uint64_t fingerprint;
    bool have_fingerprint;
    bool read_failed; /* the last scan failed: log only transitions */
} s_manager_t;

static bool s_allow_is_dir(const s_manager_t *m)
{
    return m->config.allow[0] && strcmp(m->config.allow, "*") != 0;
}

static uint64_t s_fnv(uint64_t h, const void *data, size_t size)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < size; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/*  A cheap summary of the directory's state (names, sizes, times, inodes),
    independent of the order readdir returns. Returns 0, or -1 with errno. */
static int s_fingerprint(const char *dir, uint64_t *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct stat st;
    uint64_t sum = 0, count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        uint64_t h = s_fnv(0xcbf29ce484222325ULL, e->d_name, strlen(e->d_name));
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0) {
            int64_t fields[7] = {st.st_size,          st.st_mtim.tv_sec,  st.st_mtim.tv_nsec,
                                 st.st_ctim.tv_sec,   st.st_ctim.tv_nsec, (int64_t) st.st_ino,
                                 (int64_t) st.st_mode};
            h = s_fnv(h, fields, sizeof fields);
        }
        sum += h;
        count++;
    }
    closedir(d);
    if (stat(dir, &st) == -1)
        return -1;
    int64_t fields[3] = {st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (int64_t) st.st_ino};
    *out = s_fnv(sum ^ count, fields, sizeof fields);
    return 0;
}

/*  Reads every public certificate in dir into a new table, Z85 key -> file
    path. Skips hidden files, "*_secret" files and subdirectories silently,
    and files without a valid key or with a key already seen with a warning.
    Returns the table, or NULL with errno when dir cannot be read.          */
static zhashx_t *s_scan(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    zhashx_t *keys = zhashx_new();
    if (!keys) {
        closedir(d);
        errno = ENOMEM;
        return NULL;
    }
    zhashx_set_destructor(keys, (zhashx_destructor_fn *) zstr_free);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || (n >= 7 && !strcmp(e->d_name + n - 7, "_secret")))
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int) sizeof path)
            continue;
        char key[41];
        if (zkit__security_read_cert(path, key, NULL) == -1) {
            if (errno != EISDIR)
                zsys_warning("ZKIT-SECURITY-ALLOW-FILE: skipping %s: %s", path,
                             errno == EINVAL ? "no valid curve public-key" : strerror(errno));
            continue;
        }
        const char *first = zhashx_lookup(keys, key);
        if (first) {
            zsys_warning("ZKIT-SECURITY-ALLOW-DUPLICATE: %s holds the same key as %s", path, first);
            continue;
        }
        if (zhashx_size(keys) >= S_MAX_KEYS) {
            zsys_warning("ZKIT-SECURITY-ALLOW-LIMIT: %s has more than %d keys; the rest are "
                         "ignored",
                         dir, S_MAX_KEYS);
            break;
        }
        char *copy = strdup(path);
        if (!copy || zhashx_insert(keys, key, copy) != 0)
            free(copy);
    }
    closedir(d);
    return keys;
}

/*  Writes the public certificate of one key into certs, through tmp and a
    rename, so zauth never reads a half-written file. Returns 0 or -1.      */
static int s_stage_key(s_manager_t *m, const char *z85)
{
    uint8_t public_key[32], zero[32] = {0};
    if (!zmq_z85_decode(public_key, z85))
        return -1;
    char name[65], tmp[PATH_MAX], final[PATH_MAX];
    s_hex(public_key, 32, name);
    snprintf(tmp, sizeof tmp, "%s/%s", m->tmp, name);
    snprintf(final, sizeof final, "%s/%s", m->certs, name);
    zcert_t *cert = zcert_new_from(public_key, zero);
    if (!cert)
        return -1;
    int rc = zcert_save_public(cert, tmp);
    zcert_destroy(&cert);
    if (rc == 0)
        rc = rename(tmp, final);
    if (rc != 0)
        unlink(tmp);
    return rc == 0 ? 0 : -1;
}

static void s_unstage_key(s_manager_t *m, const char *z85)
{
    uint8_t public_key[32];
    char name[65], path[PATH_MAX];
    if (!zmq_z85_decode(public_key, z85))
        return;
    s_hex(public_key, 32, name);
    snprintf(path, sizeof path, "%s/%s", m->certs, name);
    unlink(path);
}

/*  Makes certs hold exactly the keys of fresh and has zauth reload it.
    Removals go first, so a failure half-way leaves fewer keys admitted,
    never more. Takes fresh.                                                */
static void s_stage(s_manager_t *m, zhashx_t **fresh_p)
{
    zhashx_t *fresh = *fresh_p;
    size_t added = 0, removed = 0, failed = 0;
    zlistx_t *current = zhashx_keys(m->keys);
    for (const char *key = current ? zlistx_first(current) : NULL; key;
         key = zlistx_next(current)) {
        if (!zhashx_lookup(fresh, key)) {
            s_unstage_key(m, key);
            zhashx_delete(m->keys, key);
            removed++;
        }
    }
    zlistx_destroy(&current);
    for (void *path = zhashx_first(fresh); path; path = zhashx_next(fresh)) {
        const char *key = zhashx_cursor(fresh);
        if (zhashx_lookup(m->keys, key))
            continue;
        if (s_stage_key(m, key) == 0) {
            zhashx_insert(m->keys, key, (void *) "1");
            added++;
        }
        else
            failed++;
    }
    zhashx_destroy(fresh_p);
    /* zauth rebuilds its store from certs now; its own change detection
       (newest mtime in seconds, count, total size) misses a key swapped for
       another within the same second. */
    zstr_sendx(m->zauth, "CURVE", m->certs, NULL);
    zsock_wait(m->zauth);
    if (added || removed || failed || !m->have_fingerprint)
        zsys_info("ZKIT-SECURITY-RELOAD: %s: %zu keys allowed (%zu added, %zu removed%s)",
                  m->config.allow, zhashx_size(m->keys), added, removed,
                  failed ? ", some could not be staged" : "");
    if (failed)
        zsys_error("ZKIT-SECURITY-STAGE: %zu keys could not be written to %s; they are refused",
                   failed, m->certs);
    if (zhashx_size(m->keys) == 0)
        zsys_warning("ZKIT-SECURITY-NO-KEYS: %s holds no valid public certificate: every CURVE "
                     "client is refused",
                     m->config.allow);
}

/*  Rescans the allow directory when it changed (always with force).
    Returns 0 or an errno value.                                             */
static int s_reload(s_manager_t *m, bool force)
{
    if (!s_allow_is_dir(m))
        return 0;
    uint64_t fingerprint = 0;
    zhashx_t *fresh = NULL;
    if (s_fingerprint(m->config.allow, &fingerprint) == 0) {
        if (!force && m->have_fingerprint && fingerprint == m->fingerprint)
            return 0;
        fresh = s_scan(m->config.allow);
    }
    if (!fresh) {
        int err = errno ? errno : EIO;
        if (!m->read_failed)
            zsys_error("ZKIT-SECURITY-ALLOW-DIR: cannot read %s: %s; keeping the %zu keys "
                       "loaded before",
                       m->config.allow, strerror(err), zhashx_size(m->keys));
        m->read_failed = true;
        return err;
    }
    m->read_failed = false;
    s_stage(m, &fresh);
    m->fingerprint = fingerprint;
    m->have_fingerprint = true;
    return 0;
}

static void s_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    rmdir(dir);
}

/*  Sends a zauth list command (ALLOW or DENY) with the addresses of list. */
static void s_send_list(zactor_t *zauth, const char *command, const char *list)
{
    if (!*list)
        return;
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, command);
    char *copy = strdup(list);
    char *save = NULL;
    for (char *a = copy ? strtok_r(copy, ",", &save) : NULL; a; a = strtok_r(NULL, ",", &save))
        zmsg_addstr(msg, a);
    free(copy);
    zmsg_send(&msg, zauth);
    zsock_wait(zauth);
}

/*  Starts zauth and loads the configuration. Returns 0 or an errno value. */
static int s_manager_start(s_manager_t *m)
{
    /* zauth aborts when it cannot bind the ZAP endpoint: make sure nobody
       else (an embedding application's own zauth) holds it. */
    zsock_t *probe = zsock_new(ZMQ_REP);
    if (!probe)
        return ENOMEM;
    if (zmq_bind(zsock_resolve(probe), S_ZAP_ENDPOINT) == -1) {
        zsys_error("ZKIT-SECURITY-ZAP-BUSY: another ZAP handler runs in this process (%s)",
                   zmq_strerror(errno));
        zsock_destroy(&probe);
        return EBUSY;
    }
    zmq_unbind(zsock_resolve(probe), S_ZAP_ENDPOINT);
    zsock_destroy(&probe);

    if (s_allow_is_dir(m)) {
        const char *base = getenv("TMPDIR");
        int n =
            snprintf(m->root, sizeof m->root, "%s/zkit-zap-XXXXXX", base && *base ? base : "/tmp");
        if (n < 0 || (size_t) n >= sizeof m->root || !mkdtemp(m->root)) {
            int err = n < 0 || (size_t) n >= sizeof m->root ? ENAMETOOLONG : errno;
            zsys_error("ZKIT-SECURITY-STAGE: cannot create %s: %s", m->root, strerror(err));
            m->root[0] = '\0';
            return err;
        }
        snprintf(m->certs, sizeof m->certs, "%s/allow", m->root);
        snprintf(m->tmp, sizeof m->tmp, "%s/tmp", m->root);
        if (mkdir(m->certs, 0700) == -1 || mkdir(m->tmp, 0700) == -1) {
            int err = errno;
            zsys_error("ZKIT-SECURITY-STAGE: cannot create %s: %s", m->certs, strerror(err));
            return err;
        }
    }
    m->zauth = zactor_new(zauth, NULL);
    if (!m->zauth)
        return ENOMEM;
    s_send_list(m->zauth, "ALLOW", m->config.ip_allow);
    s_send_list(m->zauth, "DENY", m->config.ip_deny);
    if (!strcmp(m->config.allow, "*")) {
        zstr_sendx(m->zauth, "CURVE", CURVE_ALLOW_ANY, NULL);
        zsock_wait(m->zauth);
    }
    return s_reload(m, true);
}

static void s_manager_stop(s_manager_t *m)
{
    zactor_destroy(&m->zauth);
    if (m->root[0]) {
        s_remove_tree(m->certs);
        s_remove_tree(m->tmp);
        rmdir(m->root);
    }
    zhashx_destroy(&m->keys);
    s_config_free(&m->config);
}

static void s_manager_actor(zsock_t *pipe, void *args)
{
    /* Block the termination signals here and in zauth (which inherits the
       mask): the handshakes of a component that is shutting down must still
       be authenticated. */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &block, NULL);

    const s_config_t *config = args;
    s_manager_t m;
    memset(&m, 0, sizeof m);
    m.config.allow = strdup(config->allow);
    m.config.ip_allow = strdup(config->ip_allow);
    m.config.ip_deny = strdup(config->ip_deny);
    m.config.reload_ms = config->reload_ms;
    m.keys = zhashx_new();
    int status = m.config.allow && m.config.ip_allow && m.config.ip_deny && m.keys
                     ? s_manager_start(&m)
                     : ENOMEM;
    zsock_signal(pipe, 0); /* zactor_new returns */
    zsock_signal(pipe, (byte) (status > 255 ? EINVAL : status));

    zpoller_t *poller = zpoller_new(pipe, NULL);
    if (poller)
        zpoller_set_nonstop(poller, true);
    int64_t next = zclock_mono() + m.config.reload_ms;
    while (poller) {
        int64_t wait = next - zclock_mono();
        void *which = zpoller_wait(poller, status == 0 ? (int) (wait > 0 ? wait : 0) : -1);
        if (which == pipe) {
            char *command = zstr_recv(pipe);
            if (!command || !strcmp(command, "$TERM")) {
                zstr_free(&command);
                break;
            }
            if (!strcmp(command, "RELOAD"))
                zsock_signal(pipe, (byte) (status ? status : s_reload(&m, true)));
            zstr_free(&command);
        }
        else if (zpoller_terminated(poller))
            break;
        else if (status == 0 && zclock_mono() >= next) {
            s_reload(&m, false);
            next = zclock_mono() + m.config.reload_ms;
        }
    }
    zpoller_destroy(&poller);
    s_manager_stop(&m);
}

/*  Joins (or starts) the auth manager with config. Returns 0 or errno.    */
static int s_acquire(const s_config_t *config)
{
    int rc = 0;
    pthread_mutex_lock(&s_lock);
    if (s_refs > 0) {
        if (s_config_equal(&s_active, config))
            s_refs++;
        else {
            zsys_error("ZKIT-SECURITY-CONFLICT: this process already authenticates with another "
                       "allow list (%s) or IP lists; one configuration per process",
                       s_active.allow[0] ? s_active.allow : "none");
            rc = EBUSY;
        }
        pthread_mutex_unlock(&s_lock);
        return rc;
    }
    zactor_t *manager = zactor_new(s_manager_actor, (void *) config);
    if (!manager)
        rc = ENOMEM;
    else {
        int status = zsock_wait(manager);
        if (status != 0) {
            zactor_destroy(&manager);
            rc = status > 0 ? status : EINVAL;
        }
    }
    if (rc == 0) {
        s_active.allow = strdup(config->allow);
        s_active.ip_allow = strdup(config->ip_allow);
        s_active.ip_deny = strdup(config->ip_deny);
        if (!s_active.allow || !s_active.ip_allow || !s_active.ip_deny) {
            s_config_free(&s_active);
            zactor_destroy(&manager);
            rc = ENOMEM;
        }
        else {
            s_manager = manager;
            s_refs = 1;
        }
    }
    pthread_mutex_unlock(&s_lock);
    return rc;
}

int zkit__zap_acquire(const char *allow, const char *ip_allow, const char *ip_deny, int reload_ms)
{
    s_config_t config = {NULL, NULL, NULL, 0};
    int err = 0;
    if (s_parse_addresses(ip_allow, "--ip-allow", &config.ip_allow) == -1 ||
        s_parse_addresses(ip_deny, "--ip-deny", &config.ip_deny) == -1)
        err = errno;
    else if (!allow || !*allow)
        config.allow = strdup("");
    else if (!strcmp(allow, "*"))
        config.allow = strdup("*");
    else {
        struct stat st;
        config.allow = realpath(allow, NULL);
        if (!config.allow || stat(config.allow, &st) == -1 || !S_ISDIR(st.st_mode)) {
            err = config.allow ? ENOTDIR : errno;
            zsys_error("ZKIT-SECURITY-ALLOW-DIR: %s: %s", allow, strerror(err));
        }
    }
    if (!err && !config.allow)
        err = ENOMEM;
    config.reload_ms = reload_ms > 0 ? reload_ms : S_DEFAULT_RELOAD_MS;
    if (!err)
        err = s_acquire(&config);
    s_config_free(&config);
    return err;
}

void zkit__zap_release(void)
{
    pthread_mutex_lock(&s_lock);
    if (s_refs > 0 && --s_refs == 0) {
        zactor_destroy(&s_manager);
        s_config_free(&s_active);
    }
    pthread_mutex_unlock(&s_lock);
}

int zkit__zap_reload(void)
{
    int status = 0;
    pthread_mutex_lock(&s_lock);
    if (s_manager) {
        zstr_send(s_manager, "RELOAD");
        status = zsock_wait(s_manager);
    }
    pthread_mutex_unlock(&s_lock);
    return status == 0 ? 0 : status > 0 ? status : EINTR;
}
