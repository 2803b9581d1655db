/* http.h: the HTTP front door (issue 11): Azure's Image Analysis 4.0
 * REST API served by the mounting process over the same store, through the
 * same area code as the mount (ops.h fs_tree_*). Off unless --http is given.
 *
 * Lifecycle: fs_http_prepare runs in main before fuse daemonizes (so a bad
 * address or a busy port is reported on the terminal and the mount does not
 * happen): it reads or makes the key (STORE/http-key, 0600) and binds the
 * listening socket, which survives the fork. fs_http_start (FUSE init,
 * after the areas started) starts libmicrohttpd's threads on that socket;
 * fs_http_stop (FUSE destroy, before the areas stop) joins them. */
#ifndef VFS_FS_HTTP_H
#define VFS_FS_HTTP_H

#include <stddef.h>

/* The address --http takes when given without one. */
#define FS_HTTP_DEFAULT_ADDR "127.0.0.1:5000"

/* Parses addr ("HOST:PORT", "[V6]:PORT" or "PORT", which means loopback),
 * makes or reads STORE/http-key and binds a listening socket. 0, or -1
 * with a message in err. Call after fs_store_open. */
int fs_http_prepare(const char *addr, char *err, size_t n);
/* Starts serving (no-op when fs_http_prepare was not called). */
void fs_http_start(void);
/* Stops serving: running calls finish, the threads are joined. */
void fs_http_stop(void);

#endif
