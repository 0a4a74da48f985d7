/* tls - the listener's certificate and key, replaceable while serving.
 *
 * libmicrohttpd asks for the pair at each handshake (its GnuTLS
 * certificate callback); a SIGHUP re-reads the two files and, when they
 * parse and the key matches the certificate, new handshakes get the new
 * pair while open connections keep theirs.
 */
#ifndef A2AD_TLS_H
#define A2AD_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <stdbool.h>

#include "a2ad/agent.h"
#include "config.h"

/* Read and check [server] tls_cert_file and tls_key_file; on error log one
 * line naming the file and the problem. Thread: main, before the server. */
a2ad_status tls_start(const char *cert_path, const char *key_path);

/* For MHD_OPTION_HTTPS_CERT_CALLBACK: hands out the current pair.
 * Thread: libmicrohttpd's. */
gnutls_certificate_retrieve_function2 tls_retrieve;

/* From the connection-closed notification: the pair the connection's
 * handshake got may be freed once no connection holds it.
 * Thread: libmicrohttpd's. */
void tls_conn_closed(struct MHD_Connection *c);

/* SIGHUP: read the files of fresh again (TLS on/off needs a restart and is
 * left alone here). On any error the current pair stays and one error line
 * says why. Thread: main. */
void tls_reload(const struct config *fresh);

/* `a2ad -t`: read and check the pair as tls_start does, keeping nothing.
 * A2AD_OK with "subject …, serial …, notAfter …" in what and *expired set
 * when notAfter has passed; else A2AD_ERR_CONFIG with the line naming the
 * file and the problem in what. Thread: main. */
a2ad_status tls_check(const char *cert_path, const char *key_path, char *what, size_t n, bool *expired);

/* For /metrics: whether TLS is on, the served certificate's notAfter (Unix
 * seconds; 0 = unknown) and the SIGHUP re-reads that took a new pair / kept
 * the previous one. Thread: any. */
bool tls_metrics(long long *not_after, unsigned long long *ok, unsigned long long *failed);

/* Free every pair, wiping the keys. Thread: main, after the server stopped. */
void tls_stop(void);

#endif
