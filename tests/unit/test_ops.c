/*  test_ops: what every component gets from zkit__ops_t: sockets secured by
    role (bound = CURVE server, connected = CURVE client), a control endpoint
    served from the component's own loop, and NULL ops meaning "no options".

    Refusals are checked after an accepted peer on the same bound socket got
    its message through, with a bounded wait that load can only make pass.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#define _GNU_SOURCE /* memmem */
#include <errno.h>
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

#include "core/ops.h"
#include "core/socket.h"

#define S_DEADLINE_MS 10000

static char s_dir[256];
static char s_allow[300];

/*  DIR/NAME and DIR/NAME_secret.                                            */
static void s_make_cert(const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    zcert_t *cert = zcert_new();
    assert_non_null(cert);
    assert_int_equal(zcert_save(cert, path), 0);
    zcert_destroy(&cert);
}

static const char *s_file(const char *name)
{
    static char paths[4][400];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, 400, "%s/%s", s_dir, name);
    return path;
}

static int s_setup(void **state)
{
    (void) state;
    snprintf(s_dir, sizeof s_dir, "/tmp/zkit-test-ops-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    snprintf(s_allow, sizeof s_allow, "%s/allow", s_dir);
    assert_int_equal(mkdir(s_allow, 0700), 0);
    s_make_cert("server");
    s_make_cert("alice");
    s_make_cert("mallory");
    /* alice's public certificate is the one allowed */
    char to[400];
    snprintf(to, sizeof to, "%s/alice", s_allow);
    zcert_t *alice = zcert_load(s_file("alice"));
    assert_non_null(alice);
    assert_int_equal(zcert_save_public(alice, to), 0);
    zcert_destroy(&alice);
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

static zkit__ops_t *s_ops(const zkit_ops_opts_t *opts)
{
    zkit__ops_config_t config = {.opts = opts, .component = "unit_ops", .name = NULL};
    return zkit__ops_new(&config);
}

/*  Receives one frame on sock within ms; returns it (free it) or NULL.     */
static char *s_recv(zsock_t *sock, int ms)
{
    zpoller_t *poller = zpoller_new(sock, NULL);
    char *text = zpoller_wait(poller, ms) == sock ? zstr_recv(sock) : NULL;
    zpoller_destroy(&poller);
    return text;
}

/*  Sends command on req and lets ops serve it the way a component's loop
    does (nothing answers before serve); returns the reply frame.           */
static zframe_t *s_ask(zkit__ops_t *ops, zsock_t *req, const char *command)
{
    zmq_pollitem_t item;
    assert_int_equal(zkit__ops_pollitem(ops, &item), 1);
    assert_int_equal(zstr_send(req, command), 0);
    assert_int_equal(zmq_poll(&item, 1, S_DEADLINE_MS), 1);
    assert_int_equal(zkit__ops_serve(ops), 0);
    zpoller_t *poller = zpoller_new(req, NULL);
    zframe_t *reply = zpoller_wait(poller, S_DEADLINE_MS) == req ? zframe_recv(req) : NULL;
    zpoller_destroy(&poller);
    assert_non_null(reply);
    return reply;
}

static void s_ask_expect(zkit__ops_t *ops, zsock_t *req, const char *command, const char *expected)
{
    zframe_t *reply = s_ask(ops, req, command);
    assert_true(zframe_streq(reply, expected));
    zframe_destroy(&reply);
}

/* ---- no options ----------------------------------------------------------------- */

static void test_null_ops_is_plain(void **state)
{
    (void) state;
    zsock_t *pull = zkit__socket_new(ZMQ_PULL, NULL);
    char ep[256];
    assert_int_equal(zkit__ops_bind(NULL, pull, "tcp://127.0.0.1:*", ep, sizeof ep), 0);
    zsock_t *push = zkit__socket_new(ZMQ_PUSH, NULL);
    assert_int_equal(zkit__ops_attach(NULL, push, ep, false), 0);
    zstr_send(push, "plain");
    char *got = s_recv(pull, S_DEADLINE_MS);
    assert_string_equal(got, "plain");
    zstr_free(&got);

    zmq_pollitem_t item = {NULL, 0, 0, 0};
    assert_int_equal(zkit__ops_pollitem(NULL, &item), 0);
    assert_null(item.socket);
    assert_int_equal(zkit__ops_serve(NULL), 0);
    assert_null(zkit__ops_control_endpoint(NULL));
    assert_null(zkit__ops_control_socket(NULL));
    zkit__ops_destroy(NULL);

    /* empty options: no control endpoint, plaintext */
    zkit_ops_opts_t none = {0};
    zkit__ops_t *ops = s_ops(&none);
    assert_non_null(ops);
    assert_int_equal(zkit__ops_pollitem(ops, &item), 0);
    assert_null(zkit__ops_control_endpoint(ops));
    zkit__ops_destroy(&ops);
    assert_null(ops);
    zkit__socket_close(&push, 0);
    zkit__socket_close(&pull, 0);
}

/* ---- the control endpoint ------------------------------------------------------- */

static void s_stats(zkit__stats_t *stats, void *arg)
{
    zkit__stats_counter(stats, "widgets", *(uint64_t *) arg);
}

static void test_control_served_from_the_loop(void **state)
{
    (void) state;
    uint64_t widgets = 42;
    zkit_ops_opts_t opts = {.control = "tcp://127.0.0.1:*"};
    zkit__ops_config_t config = {.opts = &opts,
                                 .component = "unit_ops",
                                 .name = "one",
                                 .stats_fn = s_stats,
                                 .arg = &widgets};
    zkit__ops_t *ops = zkit__ops_new(&config);
    assert_non_null(ops);
    const char *ep = zkit__ops_control_endpoint(ops);
    assert_non_null(ep);
    assert_non_null(strstr(ep, "tcp://127.0.0.1:"));
    assert_null(strstr(ep, "*"));

    zmq_pollitem_t item;
    assert_int_equal(zkit__ops_pollitem(ops, &item), 1);
    assert_ptr_equal(item.socket, zsock_resolve(zkit__ops_control_socket(ops)));

    zsock_t *req = zkit__socket_new(ZMQ_REQ, NULL);
    assert_int_equal(zkit__socket_attach(req, ep, false), 0);
    s_ask_expect(ops, req, "PING", "PONG");
    zframe_t *reply = s_ask(ops, req, "STATS");
    /* the component's name and its counter are in the map */
    const char *data = (const char *) zframe_data(reply);
    size_t size = zframe_size(reply);
    assert_non_null(memmem(data, size, "unit_ops", 8));
    assert_non_null(memmem(data, size, "widgets", 7));
    assert_non_null(memmem(data, size, "\xa7widgets\x2a", 9)); /* fixstr, then 42 */
    zframe_destroy(&reply);

    /* no command callback: PAUSE is refused, not ignored */
    s_ask_expect(ops, req, "PAUSE", "ERROR not supported");

    zkit__socket_close(&req, 0);
    zkit__ops_destroy(&ops);
}

static void test_control_bind_failure(void **state)
{
    (void) state;
    zkit_ops_opts_t opts = {.control = "tcp://256.0.0.1:1"};
    errno = 0;
    assert_null(s_ops(&opts));
    assert_int_not_equal(errno, 0);
    zkit_ops_opts_t nonsense = {.control = "bogus://x"};
    assert_null(s_ops(&nonsense));
}

/* ---- security by role ----------------------------------------------------------- */

static void test_bound_is_server_connected_is_client(void **state)
{
    (void) state;
    zkit_ops_opts_t server_opts = {.curve_secret = s_file("server_secret"), .curve_allow = s_allow};
    zkit__ops_t *server = s_ops(&server_opts);
    assert_non_null(server);
    zsock_t *pull = zkit__socket_new(ZMQ_PULL, NULL);
    char ep[256];
    assert_int_equal(zkit__ops_bind(server, pull, "tcp://127.0.0.1:*", ep, sizeof ep), 0);

    zkit_ops_opts_t alice_opts = {.curve_secret = s_file("alice_secret"),
                                  .curve_server = s_file("server")};
    zkit__ops_t *alice = s_ops(&alice_opts);
    assert_non_null(alice);
    zkit_ops_opts_t mallory_opts = {.curve_secret = s_file("mallory_secret"),
                                    .curve_server = s_file("server")};
    zkit__ops_t *mallory = s_ops(&mallory_opts);
    assert_non_null(mallory);

    zsock_t *from_mallory = zkit__socket_new(ZMQ_PUSH, NULL);
    assert_int_equal(zkit__ops_attach(mallory, from_mallory, ep, false), 0);
    zstr_send(from_mallory, "mallory");
    zsock_t *from_plain = zkit__socket_new(ZMQ_PUSH, NULL);
    assert_int_equal(zkit__ops_attach(NULL, from_plain, ep, false), 0);
    zstr_send(from_plain, "plain");
    zsock_t *from_alice = zkit__socket_new(ZMQ_PUSH, NULL);
    assert_int_equal(zkit__ops_attach(alice, from_alice, ep, false), 0);
    zstr_send(from_alice, "alice");

    char *got = s_recv(pull, S_DEADLINE_MS);
    assert_string_equal(got, "alice");
    zstr_free(&got);
    got = s_recv(pull, 300);
    assert_null(got);

    /* a client-only configuration cannot secure a bound socket */
    zsock_t *wrong = zkit__socket_new(ZMQ_PULL, NULL);
    errno = 0;
    assert_int_equal(zkit__ops_bind(alice, wrong, "tcp://127.0.0.1:*", ep, sizeof ep), -1);
    assert_int_equal(errno, EINVAL);
    /* a server-only configuration cannot secure a connecting socket */
    errno = 0;
    assert_int_equal(zkit__ops_attach(server, wrong, "tcp://127.0.0.1:1", false), -1);
    assert_int_equal(errno, EINVAL);
    zkit__socket_close(&wrong, 0);

    assert_int_equal(zkit_security_reload(), 0);
    zkit__socket_close(&from_alice, 0);
    zkit__socket_close(&from_plain, 0);
    zkit__socket_close(&from_mallory, 0);
    zkit__socket_close(&pull, 0);
    zkit__ops_destroy(&mallory);
    zkit__ops_destroy(&alice);
    zkit__ops_destroy(&server);
}

static void test_secured_control_endpoint(void **state)
{
    (void) state;
    zkit_ops_opts_t opts = {.control = "tcp://127.0.0.1:*",
                            .curve_secret = s_file("server_secret"),
                            .curve_allow = s_allow};
    zkit__ops_t *ops = s_ops(&opts);
    assert_non_null(ops);
    const char *ep = zkit__ops_control_endpoint(ops);
    zmq_pollitem_t item;
    assert_int_equal(zkit__ops_pollitem(ops, &item), 1);

    zkit_ops_opts_t alice_opts = {.curve_secret = s_file("alice_secret"),
                                  .curve_server = s_file("server")};
    zkit__ops_t *alice = s_ops(&alice_opts);
    zsock_t *plain = zkit__socket_new(ZMQ_REQ, NULL);
    assert_int_equal(zkit__ops_attach(NULL, plain, ep, false), 0);
    zstr_send(plain, "PING");
    zsock_t *req = zkit__socket_new(ZMQ_REQ, NULL);
    assert_int_equal(zkit__ops_attach(alice, req, ep, false), 0);
    s_ask_expect(ops, req, "PING", "PONG");
    /* the plaintext client's request never reached the endpoint */
    assert_int_equal(zmq_poll(&item, 1, 300), 0);
    assert_null(s_recv(plain, 0));

    zkit__socket_close(&plain, 0);
    zkit__socket_close(&req, 0);
    zkit__ops_destroy(&alice);
    zkit__ops_destroy(&ops);
}

static void test_bad_options(void **state)
{
    (void) state;
    errno = 0;
    zkit__ops_config_t no_component = {.opts = NULL, .component = NULL};
    assert_null(zkit__ops_new(&no_component));
    assert_int_equal(errno, EINVAL);
    assert_null(zkit__ops_new(NULL));

    /* a secret with neither role */
    zkit_ops_opts_t lonely = {.curve_secret = s_file("alice_secret")};
    errno = 0;
    assert_null(s_ops(&lonely));
    assert_int_equal(errno, EINVAL);
    /* a missing certificate */
    zkit_ops_opts_t missing = {.curve_secret = s_file("nobody_secret"),
                               .curve_server = s_file("server")};
    errno = 0;
    assert_null(s_ops(&missing));
    assert_int_equal(errno, ENOENT);
    /* the control endpoint is not bound when the security options fail */
    zkit_ops_opts_t both = {.control = "tcp://127.0.0.1:*", .curve_allow = s_allow};
    assert_null(s_ops(&both));
}

int main(void)
{
    zsys_init();
    zsys_set_logstream(stderr);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_ops_is_plain),
        cmocka_unit_test(test_control_served_from_the_loop),
        cmocka_unit_test(test_control_bind_failure),
        cmocka_unit_test_setup_teardown(test_bound_is_server_connected_is_client, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_secured_control_endpoint, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    zsys_shutdown();
    return rc;
}
