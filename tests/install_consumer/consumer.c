/*  An installed-zkit consumer: encodes and decodes one envelope through the
    public API only, and fails loudly if anything is off.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <stdio.h>
#include <string.h>
#include <zkit.h>

int main(void)
{
    zkit_envelope_t *out = zkit_envelope_new();
    zkit_envelope_t *in = zkit_envelope_new();
    if (!out || !in)
        return 1;
    zkit_envelope_set_seq(out, 42);
    zkit_envelope_set_body(out, "installed", 9);
    zkit_envelope_set_src(out, "consumer");
    uint8_t buf[256];
    ssize_t n = zkit_envelope_encode_to(out, buf, sizeof buf);
    size_t size = 0;
    const char *body = NULL;
    int ok = n > 0 && zkit_envelope_decode_bytes(in, buf, (size_t) n) == 0 &&
             zkit_envelope_seq(in) == 42 && (body = zkit_envelope_body(in, &size)) && size == 9 &&
             memcmp(body, "installed", 9) == 0 && strcmp(zkit_envelope_src(in), "consumer") == 0;
    printf("consumer: zkit %s %s\n", zkit_version(), ok ? "ok" : "FAILED");
    zkit_envelope_destroy(&out);
    zkit_envelope_destroy(&in);
    return ok ? 0 : 1;
}
