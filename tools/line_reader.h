/*  line_reader.h (internal to the zkit program): lines from a file or a pipe
    without ever blocking the caller's event loop.

    stdio's getline blocks until a whole line or the end arrives, so a
    program that reads input lines inside an event loop (resending,
    confirming, heartbeating) freezes whenever its pipe is momentarily
    empty. And poll() on the file descriptor cannot tell whether stdio has
    already buffered the next line. This reader keeps its own buffer, reads
    the descriptor only when poll() says a read will not block, and reports
    "no complete line yet" so the caller can add the descriptor to its poll
    set and carry on. The descriptor's flags are left alone (O_NONBLOCK on a
    shared stdin would leak into the shell that started us).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_LINE_READER_H_INCLUDED
#define ZKIT_LINE_READER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

/* The longest line accepted: an envelope body is at most 16 MiB.          */
#define ZKIT__LINE_MAX (16 * 1024 * 1024)

typedef struct {
    int fd;
    bool owned; /* opened here: closed by close()                         */
    bool eof;
    char *buf;
    size_t start; /* the unread bytes are buf[start..end)                  */
    size_t end;
    size_t cap;
} zkit__line_reader_t;

/*  What zkit__line_reader_next found.                                       */
typedef enum {
    ZKIT__LINE_OK = 1,     /* a line (without its newline)                 */
    ZKIT__LINE_END = 0,    /* the input ended; no more lines               */
    ZKIT__LINE_ERROR = -1, /* a read error (errno set) or a line longer than
                              ZKIT__LINE_MAX (errno EMSGSIZE)             */
    ZKIT__LINE_AGAIN = 2   /* no complete line yet: poll fd for POLLIN     */
} zkit__line_status_t;

/*  Opens path ("-" = standard input) for reading. Returns 0, or -1 with
    errno set (open's error).                                                */
int zkit__line_reader_open(zkit__line_reader_t *self, const char *path);

/*  Closes what open() opened (never standard input) and frees the buffer.
    Safe to call twice.                                                      */
void zkit__line_reader_close(zkit__line_reader_t *self);

/*  The next line: *line points into the reader's buffer, valid until the
    next call; *size excludes the newline. The last line may lack its
    newline. Never blocks.                                                   */
zkit__line_status_t zkit__line_reader_next(zkit__line_reader_t *self, const char **line,
                                           size_t *size);

/*  The descriptor to poll for POLLIN after ZKIT__LINE_AGAIN.                */
int zkit__line_reader_fd(const zkit__line_reader_t *self);

#endif
