/* guard - the SSRF guard: which addresses a webhook may reach.
 *
 * Webhook URLs (A2A push configs, the Health Universe URLs) are chosen by
 * clients, so without a guard any client could make a2ad POST to the
 * machine itself, its LAN or a cloud metadata service. The guard refuses
 * every address that is not on the public Internet - loopback, private
 * (RFC 1918), link-local, unique-local, CGNAT, multicast, unspecified,
 * broadcast, reserved, and the IPv4-mapped / IPv4-compatible / NAT64 IPv6
 * forms of those - unless it lies in an allowlisted network ([webhooks]
 * allow_networks, CIDRs; empty by default).
 *
 * Two places ask: registration (guard_check_url: an IP literal in any
 * spelling, or a name as it resolves now, gives a clear -32602), and
 * delivery (guard_address_ok on the address each socket is about to
 * connect to, from libcurl's open-socket callback), which is what makes
 * DNS rebinding useless: whatever a name resolves to later, the address
 * actually connected is the one checked.
 */
#ifndef A2AD_GUARD_H
#define A2AD_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "a2ad/agent.h"

enum guard_class {
    GUARD_PUBLIC = 0,
    GUARD_LOOPBACK,
    GUARD_PRIVATE,
    GUARD_LINK_LOCAL,
    GUARD_UNIQUE_LOCAL,
    GUARD_CGNAT,
    GUARD_MULTICAST,
    GUARD_UNSPECIFIED,
    GUARD_BROADCAST,
    GUARD_RESERVED,
};

/* "loopback", "private (RFC 1918)", ... for messages. */
const char *guard_class_name(enum guard_class c);

/* What kind of address sa (AF_INET or AF_INET6) is; IPv6 forms that embed
 * an IPv4 address are classified by it. Thread: any. */
enum guard_class guard_classify(const struct sockaddr *sa);

/* NULL when list is a valid allowlist ("" or CIDRs / addresses separated by
 * commas or blanks), else what is wrong (static text, for config errors). */
const char *guard_networks_check(const char *list);

/* Replace the allowlist (validated with guard_networks_check first).
 * Thread: main, before the webhook thread starts. */
a2ad_status guard_set_allow(const char *list);

/* NULL when a webhook may connect to sa; else its class (never
 * GUARD_PUBLIC). Allowlisted networks pass whatever their class.
 * Thread: any. */
bool guard_address_ok(const struct sockaddr *sa, enum guard_class *why);

/* Registration: false when url's host is an IP literal (any spelling,
 * decimal, octal and hex IPv4 included) or a name that resolves now to an
 * address the guard refuses; then err says so, prefixed with `what`
 * ("...url: 169.254.169.254 is link-local; refused (see [webhooks]
 * allow_networks)"). A name that does not resolve passes (delivery checks
 * again). May block on DNS. Thread: any. */
bool guard_check_url(const char *url, const char *what, char *err, size_t errlen);

/* Write "ADDRESS is CLASS" into buf for a log line or error. */
void guard_describe(const struct sockaddr *sa, enum guard_class c, char *buf, size_t n);

#endif
