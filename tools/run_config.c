/*  run_config.c: loads and validates `zkit run`'s topology file (ZPL).

    zconfig parses the file; this walks the tree against the schema
    (run_schema.c). zconfig keeps no line numbers, so an error's line is
    found again by scanning the file for the path at fault (the first
    line where it occurs), which is what an operator needs to jump to.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_config.h"
#include "run_schema.h"

#define S_PATH_MAX 256

typedef struct {
    const char *file;
    char *error;
    size_t error_size;
} s_loader_t;

/*  The line of the file where path ("spool/buffer/dir") is spelled for
    the nth time (from 0), or 0. ZPL nests by 4 spaces per level; names end
    at a space or '='.                                                      */
static int s_line_of(const char *file, const char *path, int nth)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    char stack[8][S_PATH_MAX];
    char line[4096];
    int number = 0, found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        number++;
        size_t indent = strspn(line, " ");
        const char *name = line + indent;
        size_t length = strcspn(name, " =\t\r\n#");
        if (length == 0 || indent % 4 || indent / 4 >= 8)
            continue;
        size_t depth = indent / 4;
        snprintf(stack[depth], S_PATH_MAX, "%.*s", (int) length, name);
        char full[S_PATH_MAX * 2] = "";
        for (size_t i = 0; i <= depth; i++) {
            if (i)
                strcat(full, "/");
            strncat(full, stack[i], S_PATH_MAX - 1);
        }
        if (!strcmp(full, path) && nth-- == 0)
            found = number;
    }
    fclose(f);
    return found;
}

/*  Writes "FILE:LINE: PATH: message" about the nth time path is spelled
    and returns -1.                                                         */
static int s_fail_nth(s_loader_t *l, const char *path, int nth, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
#define s_fail(l, path, ...) s_fail_nth(l, path, 0, __VA_ARGS__)

static int s_fail_nth(s_loader_t *l, const char *path, int nth, const char *format, ...)
{
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    int line = path ? s_line_of(l->file, path, nth) : 0;
    if (path && line)
        snprintf(l->error, l->error_size, "%s:%d: %s: %s", l->file, line, path, message);
    else if (path)
        snprintf(l->error, l->error_size, "%s: %s: %s", l->file, path, message);
    else
        snprintf(l->error, l->error_size, "%s: %s", l->file, message);
    return -1;
}

const char *zkit__run_kind_name(zkit__run_kind_t kind)
{
    return kind < ZKIT__RUN_KINDS_ ? zkit__run_schema[kind].name : "?";
}

static const zkit__run_key_t *s_key(zkit__run_kind_t kind, const char *name)
{
    for (const zkit__run_key_t *k = zkit__run_schema[kind].keys; k->name; k++)
        if (!strcmp(k->name, name))
            return k;
    return NULL;
}

static void s_device_destroy(zkit__run_device_t **dev_p)
{
    zkit__run_device_t *dev = *dev_p;
    if (!dev)
        return;
    free(dev->name);
    free(dev->signature);
    if (dev->strings) {
        char *text;
        while ((text = zlist_pop(dev->strings)))
            free(text);
        zlist_destroy(&dev->strings);
    }
    free(dev);
    *dev_p = NULL;
}

/*  The key's value in section (the child named key), or NULL. A key given
    twice, or given a section instead of a value, is an error (-1).        */
static int s_value(s_loader_t *l, zconfig_t *section, const char *section_path, const char *key,
                   const char **value)
{
    *value = NULL;
    char path[S_PATH_MAX];
    for (zconfig_t *c = zconfig_child(section); c; c = zconfig_next(c)) {
        if (strcmp(zconfig_name(c), key))
            continue;
        snprintf(path, sizeof path, "%s/%s", section_path, key);
        if (*value)
            return s_fail_nth(l, path, 1, "given twice");
        if (zconfig_child(c))
            return s_fail(l, path, "is a section; a key wants a value ('%s = VALUE')", key);
        *value = zconfig_value(c) ? zconfig_value(c) : "";
    }
    return 0;
}

/*  Checks that every key of section is known (to kind, or to any kind for
    the defaults section).                                                  */
static int s_check_keys(s_loader_t *l, zconfig_t *section, const char *section_path, int kind)
{
    char path[S_PATH_MAX];
    for (zconfig_t *c = zconfig_child(section); c; c = zconfig_next(c)) {
        const char *name = zconfig_name(c);
        bool known = false;
        for (int k = 0; k < ZKIT__RUN_KINDS_; k++)
            if ((kind < 0 || kind == k) && s_key(k, name))
                known = true;
        if (!known) {
            snprintf(path, sizeof path, "%s/%s", section_path, name);
            return s_fail(l, path, "unknown key '%s'%s", name,
                          kind < 0 ? " (no device kind takes it)"
                                   : " (see 'zkit run --help' for the keys of each kind)");
        }
    }
    return 0;
}

static int s_append(char **text, const char *key, const char *value)
{
    char *grown = zsys_sprintf("%s%s=%s\n", *text, key, value);
    if (!grown)
        return -1;
    zstr_free(text);
    *text = grown;
    return 0;
}

/*  Builds one device from its section, with the defaults section's keys
    where it has none of its own.                                           */
static zkit__run_device_t *s_device(s_loader_t *l, zkit__run_kind_t kind, zconfig_t *section,
                                    zconfig_t *defaults, int order)
{
    const char *kind_name = zkit__run_schema[kind].name;
    char path[S_PATH_MAX], key_path[S_PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", kind_name, zconfig_name(section));
    if (zconfig_value(section) && *zconfig_value(section)) {
        s_fail(l, path, "a device is a section of keys, not a value");
        return NULL;
    }
    /* The name shows in log lines and in the control endpoint's labels. */
    const char *name = zconfig_name(section);
    if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@") !=
            strlen(name) ||
        strlen(name) > 64) {
        s_fail(l, path, "a device name is 1 to 64 letters, digits, '-', '_', '.', '@'");
        return NULL;
    }
    if (s_check_keys(l, section, path, (int) kind) == -1)
        return NULL;
    zkit__run_device_t *dev = calloc(1, sizeof *dev);
    if (!dev) {
        s_fail(l, path, "out of memory");
        return NULL;
    }
    dev->kind = kind;
    dev->order = order;
    dev->name = strdup(zconfig_name(section));
    dev->strings = zlist_new();
    dev->signature = zsys_sprintf("%s\n", kind_name);
    if (!dev->name || !dev->strings || !dev->signature) {
        s_fail(l, path, "out of memory");
        s_device_destroy(&dev);
        return NULL;
    }
    zkit__run_schema_init(dev);
    if (kind == ZKIT__RUN_BALANCER)
        dev->u.balancer.name = dev->name;
    else if (kind == ZKIT__RUN_SPOOL)
        dev->u.spool.name = dev->name;
    else if (kind == ZKIT__RUN_WORKER)
        dev->u.worker.opts.name = dev->name;

    char message[256];
    for (const zkit__run_key_t *k = zkit__run_schema[kind].keys; k->name; k++) {
        const char *value = NULL;
        const char *where = path;
        if (s_value(l, section, path, k->name, &value) == -1)
            goto failed;
        if (!value && defaults) {
            if (s_value(l, defaults, "defaults", k->name, &value) == -1)
                goto failed;
            where = "defaults";
        }
        snprintf(key_path, sizeof key_path, "%s/%s", where, k->name);
        if (!value) {
            if (k->required) {
                s_fail(l, path, "missing required key '%s'", k->name);
                goto failed;
            }
            continue;
        }
        if (zkit__run_schema_set(dev, k, value, message, sizeof message) == -1) {
            if (where == path)
                s_fail(l, key_path, "%s", message);
            else /* a default this device's kind rejects: say which */
                s_fail(l, key_path, "%s (for %s)", message, path);
            goto failed;
        }
        if (s_append(&dev->signature, k->name, value) == -1) {
            s_fail(l, path, "out of memory");
            goto failed;
        }
    }
    const char *key_name = NULL;
    if (zkit__run_schema_check(dev, &key_name, message, sizeof message) == -1) {
        snprintf(key_path, sizeof key_path, "%s/%s", path, key_name);
        if (s_line_of(l->file, key_path, 0))
            s_fail(l, key_path, "%s", message);
        else
            s_fail(l, path, "%s: %s", key_name, message);
        goto failed;
    }
    return dev;
failed:
    s_device_destroy(&dev);
    return NULL;
}

static bool s_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static const zkit_ops_opts_t *s_ops(const zkit__run_device_t *dev)
{
    switch (dev->kind) {
    case ZKIT__RUN_FORWARDER: return &dev->u.forwarder.ops;
    case ZKIT__RUN_BALANCER: return &dev->u.balancer.ops;
    case ZKIT__RUN_SPOOL: return &dev->u.spool.ops;
    case ZKIT__RUN_WORKER: return &dev->u.worker.opts.ops;
    default: return &dev->u.sink.opts.ops;
    }
}

/*  The spool directories a device writes (its own, its dead letters).     */
static void s_dirs(const zkit__run_device_t *dev, const char *dirs[2])
{
    dirs[0] = dirs[1] = NULL;
    if (dev->kind == ZKIT__RUN_SPOOL) {
        dirs[0] = dev->u.spool.dir;
        dirs[1] = dev->u.spool.dead_letter_dir;
    }
    else if (dev->kind == ZKIT__RUN_BALANCER)
        dirs[0] = dev->u.balancer.dead_letter_dir;
}

/*  Rules across devices: unique names, one device per spool directory, one
    ZAP configuration per process (docs/security.md).                       */
static int s_check_topology(s_loader_t *l, zkit__run_topology_t *t)
{
    char path[S_PATH_MAX];
    const zkit__run_device_t *zap = NULL;
    for (size_t i = 0; i < t->count; i++) {
        const zkit__run_device_t *dev = t->devices[i];
        snprintf(path, sizeof path, "%s/%s", zkit__run_kind_name(dev->kind), dev->name);
        const char *dirs[2];
        s_dirs(dev, dirs);
        for (size_t j = 0; j < i; j++) {
            const zkit__run_device_t *other = t->devices[j];
            if (!strcmp(other->name, dev->name))
                return s_fail_nth(l, path, other->kind == dev->kind,
                                  "duplicate device name '%s' (also %s/%s)", dev->name,
                                  zkit__run_kind_name(other->kind), other->name);
            const char *others[2];
            s_dirs(other, others);
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++)
                    if (dirs[a] && others[b] && !strcmp(dirs[a], others[b]))
                        return s_fail(l, path, "directory %s is also used by %s/%s", dirs[a],
                                      zkit__run_kind_name(other->kind), other->name);
        }
        const zkit_ops_opts_t *ops = s_ops(dev);
        if (!ops->curve_allow && !ops->ip_allow && !ops->ip_deny)
            continue;
        if (!zap)
            zap = dev;
        else {
            const zkit_ops_opts_t *first = s_ops(zap);
            if (!s_same(first->curve_allow, ops->curve_allow) ||
                !s_same(first->ip_allow, ops->ip_allow) || !s_same(first->ip_deny, ops->ip_deny))
                return s_fail(l, path,
                              "curve_allow, ip_allow and ip_deny differ from %s/%s's: one process "
                              "authenticates with one configuration (set them in 'defaults')",
                              zkit__run_kind_name(zap->kind), zap->name);
        }
    }
    return 0;
}

static int s_kind(const char *name)
{
    for (int k = 0; k < ZKIT__RUN_KINDS_; k++)
        if (!strcmp(zkit__run_schema[k].name, name))
            return k;
    return -1;
}

/*  zconfig reports a syntax error only as a czmq log line ("... E
    (zconfig): (LINE) what"), which this czmq writes to stdout whatever log
    stream is set: catch stdout and stderr around the load, turn that line
    into our error, and pass any other line (another thread's log, at a
    reload) on to stderr. The file is read here and parsed from memory:
    zconfig_load leaks its zfile when the text does not parse.             */
static zconfig_t *s_parse(s_loader_t *l)
{
    FILE *file = fopen(l->file, "r");
    char *text = NULL;
    size_t size = 0;
    FILE *buffer = file ? open_memstream(&text, &size) : NULL;
    char block[4096];
    size_t n;
    while (buffer && (n = fread(block, 1, sizeof block, file)) > 0)
        fwrite(block, 1, n, buffer);
    int err = !file ? errno : ferror(file) ? EIO : !buffer ? ENOMEM : 0;
    if (buffer)
        fclose(buffer);
    if (file)
        fclose(file);
    if (err || !text) {
        s_fail(l, NULL, "cannot read: %s", strerror(err ? err : ENOMEM));
        free(text);
        return NULL;
    }
    fflush(stdout);
    fflush(stderr);
    FILE *capture = tmpfile();
    int saved_out = capture ? dup(STDOUT_FILENO) : -1;
    int saved_err = capture ? dup(STDERR_FILENO) : -1;
    bool captured = saved_out >= 0 && saved_err >= 0 && dup2(fileno(capture), STDOUT_FILENO) >= 0 &&
                    dup2(fileno(capture), STDERR_FILENO) >= 0;
    /* An empty text is a valid, empty tree (zconfig_str_load says NULL). */
    zconfig_t *root = *text ? zconfig_str_load(text) : zconfig_new("root", NULL);
    free(text);
    char message[256] = "";
    int line = 0;
    fflush(stdout);
    fflush(stderr);
    if (saved_out >= 0) {
        dup2(saved_out, STDOUT_FILENO);
        close(saved_out);
    }
    if (saved_err >= 0) {
        dup2(saved_err, STDERR_FILENO);
        close(saved_err);
    }
    if (captured) {
        rewind(capture);
        char logged[1024];
        while (fgets(logged, sizeof logged, capture)) {
            const char *what = strstr(logged, "(zconfig): ");
            if (!what || *message) {
                fputs(logged, stderr);
                continue;
            }
            what += strlen("(zconfig): ");
            if (sscanf(what, "(%d)", &line) == 1 && strchr(what, ')'))
                what = strchr(what, ')') + 1;
            while (*what == ' ')
                what++;
            snprintf(message, sizeof message, "%.*s", (int) strcspn(what, "\r\n"), what);
        }
    }
    if (capture)
        fclose(capture);
    if (!root) {
        if (line)
            snprintf(l->error, l->error_size, "%s:%d: not valid ZPL: %s", l->file, line, message);
        else
            s_fail(l, NULL, "not valid ZPL%s%s", *message ? ": " : "", message);
    }
    return root;
}

static int s_add(zkit__run_topology_t *t, zkit__run_device_t *dev)
{
    zkit__run_device_t **grown = realloc(t->devices, (t->count + 1) * sizeof *grown);
    if (!grown)
        return -1;
    t->devices = grown;
    t->devices[t->count++] = dev;
    return 0;
}

zkit__run_topology_t *zkit__run_load(const char *path, char *error, size_t error_size)
{
    s_loader_t loader = {path, error, error_size}, *l = &loader;
    error[0] = '\0';
    zconfig_t *root = s_parse(l);
    if (!root)
        return NULL;
    zkit__run_topology_t *t = calloc(1, sizeof *t);
    zconfig_t *defaults = NULL;
    int rc = t ? 0 : s_fail(l, NULL, "out of memory");
    for (zconfig_t *c = zconfig_child(root); rc == 0 && c; c = zconfig_next(c)) {
        const char *name = zconfig_name(c);
        int nth = 0; /* earlier top-level entries of this name */
        for (zconfig_t *b = zconfig_child(root); b != c; b = zconfig_next(b))
            nth += !strcmp(zconfig_name(b), name);
        if (zconfig_value(c) && *zconfig_value(c))
            rc = s_fail_nth(l, name, nth, "a top-level entry is a section, not a value");
        else if (!strcmp(name, "defaults")) {
            if (defaults)
                rc = s_fail_nth(l, name, nth, "given twice");
            else if ((rc = s_check_keys(l, c, name, -1)) == 0)
                defaults = c;
        }
        else if (s_kind(name) < 0)
            rc = s_fail(l, name,
                        "unknown section '%s' (known: defaults, forwarder, balancer, spool, "
                        "worker, sink)",
                        name);
    }
    for (zconfig_t *c = zconfig_child(root); rc == 0 && c; c = zconfig_next(c)) {
        int kind = s_kind(zconfig_name(c));
        if (kind < 0)
            continue;
        for (zconfig_t *d = zconfig_child(c); rc == 0 && d; d = zconfig_next(d)) {
            zkit__run_device_t *dev = s_device(l, kind, d, defaults, (int) t->count);
            if (!dev)
                rc = -1;
            else if (s_add(t, dev) == -1) {
                s_device_destroy(&dev);
                rc = s_fail(l, NULL, "out of memory");
            }
        }
    }
    if (rc == 0 && t->count == 0)
        rc = s_fail(l, NULL,
                    "no devices (add a section such as 'forwarder', see 'zkit run --help')");
    if (rc == 0)
        rc = s_check_topology(l, t);
    zconfig_destroy(&root);
    if (rc == -1)
        zkit__run_topology_destroy(&t);
    return t;
}

void zkit__run_topology_destroy(zkit__run_topology_t **self_p)
{
    zkit__run_topology_t *t = *self_p;
    if (!t)
        return;
    for (size_t i = 0; i < t->count; i++)
        s_device_destroy(&t->devices[i]);
    free(t->devices);
    free(t);
    *self_p = NULL;
}

size_t zkit__run_endpoints(const zkit__run_device_t *dev, bool outputs, const char *list[4])
{
    size_t n = 0;
#define S_ADD(ep)                                                                                  \
    do {                                                                                           \
        if (ep)                                                                                    \
            list[n++] = (ep);                                                                      \
    } while (0)
    switch (dev->kind) {
    case ZKIT__RUN_FORWARDER:
        if (outputs) {
            S_ADD(dev->u.forwarder.backend);
            S_ADD(dev->u.forwarder.backend_connect);
        }
        else {
            S_ADD(dev->u.forwarder.frontend);
            S_ADD(dev->u.forwarder.frontend_connect);
        }
        break;
    case ZKIT__RUN_BALANCER:
        S_ADD(outputs ? dev->u.balancer.backend : dev->u.balancer.frontend);
        break;
    case ZKIT__RUN_SPOOL:
        if (outputs)
            S_ADD(dev->u.spool.out);
        else {
            S_ADD(dev->u.spool.in);
            S_ADD(dev->u.spool.in_push);
        }
        break;
    case ZKIT__RUN_WORKER:
        S_ADD(outputs ? dev->u.worker.opts.sink : dev->u.worker.opts.connect);
        break;
    case ZKIT__RUN_SINK:
        if (!outputs)
            S_ADD(dev->u.sink.opts.bind);
        break;
    default: break;
    }
#undef S_ADD
    return n;
}
