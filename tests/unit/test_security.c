/*  test_security: CURVE with an allow-list, IP lists and the ZAP handler.

    Every refused attempt is synchronised on the server's own monitor event
    (handshake failed), so the test knows the server decided; only then does
    it check that nothing reached either side (a zero-wait poll, plus one
    short bounded wait per group of attempts).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/security.h"
#include "core/socket.h"

#define S_DEADLINE_MS 10000
#define S_ATTEMPTS    100

#define S_EVENTS                                                                                   \
    (ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |                        \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

static char s_dir[256];   /* per-test scratch directory */
static char s_allow[300]; /* the allow directory inside it */
static char s_keys[300];  /* certificates not in the allow directory */

/* ---- files ---------------------------------------------------------------------- */

static void s_path(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t) n < size);
}

/*  Makes keys/NAME (public) and keys/NAME_secret.                          */
static void s_make_cert(const char *name)
{
    char path[400];
    s_path(path, sizeof path, s_keys, name);
    zcert_t *cert = zcert_new();
    assert_non_null(cert);
    assert_int_equal(zcert_save(cert, path), 0); /* writes path and path_secret */
    zcert_destroy(&cert);
}

static void s_copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    assert_non_null(in);
    FILE *out = fopen(to, "wb");
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/*  Puts keys/NAME into the allow directory as allow/AS.                    */
static void s_allow_cert(const char *name, const char *as)
{
    char from[400], to[400];
    s_path(from, sizeof from, s_keys, name);
    s_path(to, sizeof to, s_allow, as);
    s_copy_file(from, to);
}

static void s_unallow(const char *as)
{
    char path[400];
    s_path(path, sizeof path, s_allow, as);
    assert_int_equal(unlink(path), 0);
}

static int s_setup(void **state)
{
    (void) state;
    snprintf(s_dir, sizeof s_dir, "/tmp/zkit-test-security-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    s_path(s_allow, sizeof s_allow, s_dir, "allow");
    s_path(s_keys, sizeof s_keys, s_dir, "keys");
    assert_int_equal(mkdir(s_allow, 0700), 0);
    assert_int_equal(mkdir(s_keys, 0700), 0);
    s_make_cert("server");
    s_make_cert("alice");
    s_make_cert("bob");
    s_make_cert("mallory");
    s_make_cert("impostor"); /* a server key nobody serves with */
    s_allow_cert("alice", "alice");
    return 0;
}

static int s_teardown(void **state)
{
    (void) state;
    zdir_t *dir = zdir_new(s_dir, NULL);
    if (dir) {
        zdir_remove(dir, true);
        zdir_destroy(&dir);
    }
    rmdir(s_dir);
    return 0;
}

/* ---- sockets -------------------------------------------------------------------- */

typedef struct {
    zkit__security_t *security;
    zsock_t *sock; /* ROUTER that echoes */
    zsock_t *monitor;
    char endpoint[256];
} s_server_t;

static zkit__security_t *s_server_security(const char *allow, const char *ip_allow,
                                           const char *ip_deny, int reload_ms)
{
    char secret[400];
    s_path(secret, sizeof secret, s_keys, "server_secret");
    zkit__security_opts_t opts = ZKIT__SECURITY_OPTS_DEFAULT;
    opts.curve_secret = allow ? secret : NULL;
    opts.curve_allow = allow;
    opts.ip_allow = ip_allow;
    opts.ip_deny = ip_deny;
    opts.reload_ms = reload_ms;
    return zkit__security_new(&opts);
}

static void s_server_start(s_server_t *server, zkit__security_t *security)
{
    static int monitors = 0;
    memset(server, 0, sizeof *server);
    server->security = security;
    assert_non_null(security);
    server->sock = zkit__socket_new(ZMQ_ROUTER, NULL);
    assert_non_null(server->sock);
    assert_int_equal(zkit__security_apply_server(security, server->sock), 0);
    char monitor[64];
    snprintf(monitor, sizeof monitor, "inproc://test-security-monitor-%d", ++monitors);
    assert_int_equal(zmq_socket_monitor(zsock_resolve(server->sock), monitor, S_EVENTS), 0);
    server->monitor = zsock_new(ZMQ_PAIR);
    assert_int_equal(zsock_connect(server->monitor, "%s", monitor), 0);
    assert_int_equal(zkit__socket_attach(server->sock, "tcp://127.0.0.1:*", true), 0);
    assert_int_equal(
        zkit__socket_last_endpoint(server->sock, server->endpoint, sizeof server->endpoint), 0);
}

static void s_server_stop(s_server_t *server, bool destroy_security)
{
    zkit__socket_close(&server->sock, 0);
    zsock_destroy(&server->monitor);
    if (destroy_security)
        zkit__security_destroy(&server->security);
}

/*  The next monitor event (its id), or 0 when none came in time.           */
static int s_next_event(s_server_t *server, int timeout_ms, uint32_t *value)
{
    zpoller_t *poller = zpoller_new(server->monitor, NULL);
    void *which = zpoller_wait(poller, timeout_ms);
    zpoller_destroy(&poller);
    if (!which)
        return 0;
    zmsg_t *msg = zmsg_recv(server->monitor);
    assert_non_null(msg);
    zframe_t *first = zmsg_first(msg);
    assert_int_equal(zframe_size(first), 6);
    uint16_t event;
    memcpy(&event, zframe_data(first), 2);
    if (value)
        memcpy(value, zframe_data(first) + 2, 4);
    zmsg_destroy(&msg);
    return event;
}

/*  A DEALER that connects once (no reconnects: one attempt, one event),
    secured with keys/SECRET and keys/SERVER_PUBLIC when given.              */
static zsock_t *s_client(const s_server_t *server, const char *secret_name, const char *server_name,
                         bool reconnect)
{
    zsock_t *client = zkit__socket_new(ZMQ_DEALER, NULL);
    assert_non_null(client);
    zsock_set_linger(client, 0);
    zsock_set_reconnect_ivl(client, reconnect ? 10 : -1);
    if (secret_name) {
        char secret[400], server_public[400];
        s_path(secret, sizeof secret, s_keys, secret_name);
        s_path(server_public, sizeof server_public, s_keys, server_name);
        zkit__security_opts_t opts = ZKIT__SECURITY_OPTS_DEFAULT;
        opts.curve_secret = secret;
        opts.curve_server = server_public;
        zkit__security_t *security = zkit__security_new(&opts);
        assert_non_null(security);
        assert_int_equal(zkit__security_apply_client(security, client), 0);
        zkit__security_destroy(&security); /* the socket keeps its keys */
    }
    assert_int_equal(zkit__socket_attach(client, server->endpoint, false), 0);
    return client;
}

static bool s_readable(zsock_t *sock, int timeout_ms)
{
    zpoller_t *poller = zpoller_new(sock, NULL);
    bool ready = zpoller_wait(poller, timeout_ms) == sock;
    zpoller_destroy(&poller);
    return ready;
}

/*  An admitted client: its message reaches the server, the echo comes back. */
static void s_expect_exchange(s_server_t *server, zsock_t *client)
{
    assert_int_equal(zstr_send(client, "hello"), 0);
    assert_true(s_readable(server->sock, S_DEADLINE_MS));
    zmsg_t *msg = zmsg_recv(server->sock);
    assert_int_equal(zmsg_size(msg), 2);
    assert_true(zframe_streq(zmsg_last(msg), "hello"));
    zframe_reset(zmsg_last(msg), "welcome", 7);
    assert_int_equal(zmsg_send(&msg, server->sock), 0);
    assert_true(s_readable(client, S_DEADLINE_MS));
    char *reply = zstr_recv(client);
    assert_string_equal(reply, "welcome");
    zstr_free(&reply);
}

/*  A refused client: the server reports a failed handshake (of the kind
    wanted), and neither side has received anything.                         */
static void s_expect_refused(s_server_t *server, zsock_t *client, int want_event)
{
    /* The server may refuse the handshake before this send: libzmq then
       ends the session and the send fails, which is just as refused. */
    zmq_send(zsock_resolve(client), "let me in", 9, ZMQ_DONTWAIT);
    uint32_t value = 0;
    int event = s_next_event(server, S_DEADLINE_MS, &value);
    if (event != want_event)
        fail_msg("expected event 0x%x, got 0x%x (value %u)", want_event, event, value);
    if (want_event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        assert_int_equal(value, 400);
    assert_false(s_readable(server->sock, 0));
    assert_false(s_readable(client, 0));
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_allow_list(void **state)
{
    (void) state;
    s_server_t server;
    s_server_start(&server, s_server_security(s_allow, NULL, NULL, 0));

    zsock_t *alice = s_client(&server, "alice_secret", "server", false);
    s_expect_exchange(&server, alice);
    assert_int_equal(s_next_event(&server, S_DEADLINE_MS, NULL), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);

    for (int i = 0; i < S_ATTEMPTS; i++) {
        /* A key not in the allow list: ZAP says 400. */
        zsock_t *mallory = s_client(&server, "mallory_secret", "server", false);
        s_expect_refused(&server, mallory, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
        zsock_destroy(&mallory);
        /* No CURVE at all. */
        zsock_t *plain = s_client(&server, NULL, NULL, false);
        s_expect_refused(&server, plain, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL);
        zsock_destroy(&plain);
        /* An allowed key, but the wrong server key: the server cannot even
           read the client's HELLO. */
        zsock_t *confused = s_client(&server, "alice_secret", "impostor", false);
        s_expect_refused(&server, confused, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL);
        zsock_destroy(&confused);
    }
    /* One bounded look for anything late: nothing reached the server, and
       alice, still connected, keeps working. */
    assert_false(s_readable(server.sock, 100));
    s_expect_exchange(&server, alice);
    zsock_destroy(&alice);
    s_server_stop(&server, true);
}

static void test_reload_admits_and_revokes(void **state)
{
    (void) state;
    s_server_t server;
    s_server_start(&server, s_server_security(s_allow, NULL, NULL, 3600 * 1000));

    zsock_t *bob = s_client(&server, "bob_secret", "server", false);
    s_expect_refused(&server, bob, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy(&bob);

    /* Added to the directory, admitted after a reload, without a restart. */
    s_allow_cert("bob", "bob.cert");
    assert_int_equal(zkit__security_reload(server.security), 0);
    bob = s_client(&server, "bob_secret", "server", false);
    s_expect_exchange(&server, bob);
    assert_int_equal(s_next_event(&server, S_DEADLINE_MS, NULL), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);

    /* Removed: new connections are refused; the one made stays up. */
    s_unallow("bob.cert");
    assert_int_equal(zkit__security_reload(server.security), 0);
    zsock_t *bob2 = s_client(&server, "bob_secret", "server", false);
    s_expect_refused(&server, bob2, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy(&bob2);
    s_expect_exchange(&server, bob);
    zsock_destroy(&bob);

    /* A key swapped for another in the same file name, same size, within
       the same second: still noticed. */
    s_allow_cert("bob", "swap");
    assert_int_equal(zkit__security_reload(server.security), 0);
    s_unallow("swap");
    s_allow_cert("mallory", "swap");
    assert_int_equal(zkit__security_reload(server.security), 0);
    zsock_t *mallory = s_client(&server, "mallory_secret", "server", false);
    s_expect_exchange(&server, mallory);
    assert_int_equal(s_next_event(&server, S_DEADLINE_MS, NULL), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    zsock_destroy(&mallory);
    bob = s_client(&server, "bob_secret", "server", false);
    s_expect_refused(&server, bob, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy(&bob);
    s_unallow("swap");
    s_server_stop(&server, true);
}

static void test_reload_on_timer(void **state)
{
    (void) state;
    s_server_t server;
    s_server_start(&server, s_server_security(s_allow, NULL, NULL, 20));
    zsock_t *bob = s_client(&server, "bob_secret", "server", false);
    s_expect_refused(&server, bob, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy(&bob);
    /* Nobody calls reload: the 20 ms poll finds the new file. libzmq ends a
       session whose handshake failed, so each try is a new client, and each
       try waits for the server's verdict. */
    s_allow_cert("bob", "bob");
    int64_t deadline = zclock_mono() + S_DEADLINE_MS;
    int tries = 0;
    bool admitted = false;
    while (!admitted && zclock_mono() < deadline) {
        bob = s_client(&server, "bob_secret", "server", false);
        zmq_send(zsock_resolve(bob), "hello", 5, ZMQ_DONTWAIT); /* fails if refused first */
        int event = s_next_event(&server, S_DEADLINE_MS, NULL);
        tries++;
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            assert_true(s_readable(server.sock, S_DEADLINE_MS));
            zmsg_t *msg = zmsg_recv(server.sock);
            assert_true(zframe_streq(zmsg_last(msg), "hello"));
            zmsg_destroy(&msg);
            admitted = true;
        }
        else
            assert_int_equal(event, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
        zsock_destroy(&bob);
    }
    assert_true(admitted);
    s_unallow("bob");
    s_server_stop(&server, true);
}

/*  zauth itself aborts on two files with one key; the staged copy must not. */
static void test_messy_allow_dir(void **state)
{
    (void) state;
    s_allow_cert("alice", "alice-copy");
    s_allow_cert("alice_secret", "alice_secret"); /* a secret: skipped */
    char path[400];
    s_path(path, sizeof path, s_allow, "garbage");
    FILE *f = fopen(path, "w");
    fputs("curve\n    public-key = \"not a key\"\n\x01\x02\xff\n", f);
    fclose(f);
    s_path(path, sizeof path, s_allow, "subdir");
    assert_int_equal(mkdir(path, 0700), 0);

    s_server_t server;
    s_server_start(&server, s_server_security(s_allow, NULL, NULL, 0));
    zsock_t *alice = s_client(&server, "alice_secret", "server", false);
    s_expect_exchange(&server, alice);
    assert_int_equal(s_next_event(&server, S_DEADLINE_MS, NULL), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    zsock_destroy(&alice);
    zsock_t *mallory = s_client(&server, "mallory_secret", "server", false);
    s_expect_refused(&server, mallory, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy(&mallory);
    s_server_stop(&server, true);

    assert_int_equal(rmdir(path), 0);
    s_unallow("garbage");
    s_unallow("alice_secret");
    s_unallow("alice-copy");
}

static void test_ip_lists(void **state)
{
    (void) state;
    s_server_t server;
    /* Denied address, allowed key: refused. */
    s_server_start(&server, s_server_security(s_allow, NULL, "10.0.0.1, 127.0.0.1", 0));
    for (int i = 0; i < 10; i++) {
        zsock_t *alice = s_client(&server, "alice_secret", "server", false);
        s_expect_refused(&server, alice, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
        zsock_destroy(&alice);
    }
    s_server_stop(&server, true);

    /* Plaintext server with a deny list: the ZAP domain makes it ask. */
    s_server_start(&server, s_server_security(NULL, NULL, "127.0.0.1", 0));
    zsock_t *plain = s_client(&server, NULL, NULL, false);
    s_expect_refused(&server, plain, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy(&plain);
    s_server_stop(&server, true);

    /* An allow list without 127.0.0.1 refuses it; with it, admits it. */
    s_server_start(&server, s_server_security(NULL, "10.9.8.7", NULL, 0));
    plain = s_client(&server, NULL, NULL, false);
    s_expect_refused(&server, plain, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy(&plain);
    s_server_stop(&server, true);
    s_server_start(&server, s_server_security(NULL, "127.0.0.1,::1", NULL, 0));
    plain = s_client(&server, NULL, NULL, false);
    s_expect_exchange(&server, plain);
    zsock_destroy(&plain);
    s_server_stop(&server, true);
}

/*  With the ZAP handler gone, a secured socket refuses everyone (ZAP
    enforcement) instead of admitting unauthenticated peers.               */
static void test_fails_closed_without_handler(void **state)
{
    (void) state;
    s_server_t server;
    s_server_start(&server, s_server_security(s_allow, NULL, NULL, 0));
    zkit__security_destroy(&server.security);
    zsock_t *alice = s_client(&server, "alice_secret", "server", false);
    zmq_send(zsock_resolve(alice), "hello", 5, ZMQ_DONTWAIT); /* fails if refused first */
    int event = s_next_event(&server, S_DEADLINE_MS, NULL);
    assert_true(event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
                event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert_false(s_readable(server.sock, 0));
    zsock_destroy(&alice);
    s_server_stop(&server, false);
}

static void test_one_configuration_per_process(void **state)
{
    (void) state;
    zkit__security_t *a = s_server_security(s_allow, NULL, NULL, 0);
    assert_non_null(a);
    zkit__security_t *b = s_server_security(s_allow, NULL, NULL, 0); /* shared */
    assert_non_null(b);
    errno = 0;
    assert_null(s_server_security(s_keys, NULL, NULL, 0));
    assert_int_equal(errno, EBUSY);
    assert_null(s_server_security(s_allow, NULL, "127.0.0.1", 0));
    assert_int_equal(errno, EBUSY);
    zkit__security_destroy(&a);
    assert_int_equal(zkit__security_reload(b), 0);
    zkit__security_destroy(&b);
    assert_null(b);
    /* Released: another configuration may start now. */
    zkit__security_t *c = s_server_security(s_keys, NULL, NULL, 0);
    assert_non_null(c);
    zkit__security_destroy(&c);

    /* A ZAP handler someone else runs is detected, not crashed into. */
    zsock_t *other = zsock_new(ZMQ_REP);
    assert_int_equal(zmq_bind(zsock_resolve(other), "inproc://zeromq.zap.01"), 0);
    assert_null(s_server_security(s_allow, NULL, NULL, 0));
    assert_int_equal(errno, EBUSY);
    zmq_unbind(zsock_resolve(other), "inproc://zeromq.zap.01");
    zsock_destroy(&other);
}

static void test_bad_options(void **state)
{
    (void) state;
    char secret[400], public_only[400], missing[400];
    s_path(secret, sizeof secret, s_keys, "server_secret");
    s_path(public_only, sizeof public_only, s_keys, "server");
    s_path(missing, sizeof missing, s_keys, "nobody");

    zkit__security_t *none = zkit__security_new(NULL);
    assert_non_null(none);
    assert_false(zkit__security_enabled(none));
    assert_null(zkit__security_public_key(none));
    zsock_t *sock = zkit__socket_new(ZMQ_ROUTER, NULL);
    assert_int_equal(zkit__security_apply_server(none, sock), 0);
    assert_int_equal(zkit__security_apply_client(none, sock), 0);
    assert_int_equal(zkit__security_reload(none), 0);
    zkit__security_destroy(&none);

    zkit__security_opts_t opts = ZKIT__SECURITY_OPTS_DEFAULT;
    opts.curve_allow = s_allow; /* without a secret */
    assert_null(zkit__security_new(&opts));
    assert_int_equal(errno, EINVAL);
    opts.curve_secret = missing;
    assert_null(zkit__security_new(&opts));
    assert_int_equal(errno, ENOENT);
    opts.curve_secret = public_only; /* no secret key in it */
    assert_null(zkit__security_new(&opts));
    assert_int_equal(errno, EINVAL);
    opts.curve_secret = secret;
    opts.curve_allow = missing;
    assert_null(zkit__security_new(&opts));
    assert_int_equal(errno, ENOENT);
    opts.curve_allow = secret; /* a file, not a directory */
    assert_null(zkit__security_new(&opts));
    assert_int_equal(errno, ENOTDIR);
    opts.curve_allow = s_allow;
    opts.ip_deny = "127.0.0.1,not-an-address";
    assert_null(zkit__security_new(&opts));
    assert_int_equal(errno, EINVAL);
    opts.ip_deny = NULL;
    opts.curve_allow = NULL; /* a secret alone serves nothing */
    assert_null(zkit__security_new(&opts));
    assert_int_equal(errno, EINVAL);

    /* Client role only: serving with it is refused, connecting works. */
    opts.curve_server = public_only;
    zkit__security_t *client = zkit__security_new(&opts);
    assert_non_null(client);
    assert_true(zkit__security_enabled(client));
    assert_int_equal(strlen(zkit__security_public_key(client)), 40);
    assert_int_equal(zkit__security_apply_server(client, sock), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit__security_apply_client(client, sock), 0);
    zkit__security_destroy(&client);
    zkit__socket_close(&sock, 0);
}

int main(void)
{
    zsys_init();
    if (!getenv("ZKIT_TEST_VERBOSE"))
        zsys_set_logstream(NULL); /* refusals and bad files are logged, as expected */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_allow_list, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reload_admits_and_revokes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reload_on_timer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_messy_allow_dir, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ip_lists, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_fails_closed_without_handler, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_one_configuration_per_process, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
