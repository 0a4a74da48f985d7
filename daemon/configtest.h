/* configtest - `a2ad -t`: check everything that can be checked without
 * serving, and name the cause of each refusal.
 *
 * The plugin directory exists; every plugin loads and its init() accepts
 * its [agent.X] options (then destroy() runs); every [agent.X] section and
 * default_agent name a loaded agent; a junk .so is refused (as at start-up,
 * unless [plugins] errors = skip); the database path is usable (its
 * directory exists and is writable, an existing file opens read-write as an
 * SQLite database); the TLS pair parses and the key matches the
 * certificate (tls.c; an expired one is a warning); the port is free (a warning only: the running daemon
 * holds it).
 */
#ifndef A2AD_CONFIGTEST_H
#define A2AD_CONFIGTEST_H

#include <stdbool.h>

#include "a2ad/agent.h"
#include "config.h"

/* Print the problems on stderr and "PATH: configuration ok" on stdout;
 * returns the exit status (0 = ok, 1 = refused). verbose: print the
 * effective configuration first. host: the table handed to init(). Thread:
 * main, before any other thread. */
int check_config(const struct config *cfg, const char *path, bool verbose,
                 const struct a2ad_host *host);

#endif
