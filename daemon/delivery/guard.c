/* guard - the SSRF guard. See guard.h.
 *
 * The allowlist is a small fixed array written once at start-up (before the
 * webhook thread exists) and only read afterwards, so it needs no lock. */
#include "delivery/guard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NETWORKS 64

struct network {
    int family;              /* AF_INET or AF_INET6 */
    unsigned char addr[16];  /* network byte order; 4 used for AF_INET */
    unsigned prefix;         /* bits */
};

static struct network allow[MAX_NETWORKS];
static size_t n_allow;

const char *guard_class_name(enum guard_class c) {
    switch (c) {
    case GUARD_PUBLIC: return "public";
    case GUARD_LOOPBACK: return "loopback";
    case GUARD_PRIVATE: return "private (RFC 1918)";
    case GUARD_LINK_LOCAL: return "link-local";
    case GUARD_UNIQUE_LOCAL: return "unique-local";
    case GUARD_CGNAT: return "shared address space (CGNAT, 100.64.0.0/10)";
    case GUARD_MULTICAST: return "multicast";
    case GUARD_UNSPECIFIED: return "unspecified";
    case GUARD_BROADCAST: return "broadcast";
    case GUARD_RESERVED: return "reserved (not routable on the Internet)";
    }
    return "refused";
}

/* ---- classification ---- */

static enum guard_class classify_v4(const unsigned char b[4]) {
    uint32_t a = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
#define IN(net, bits) ((a >> (32 - (bits))) == ((uint32_t)(net) >> (32 - (bits))))
    if (a == 0xffffffffu) return GUARD_BROADCAST;
    if (IN(0x00000000u, 8)) return GUARD_UNSPECIFIED; /* "this network"; 0.0.0.0 */
    if (IN(0x7f000000u, 8)) return GUARD_LOOPBACK;
    if (IN(0x0a000000u, 8) || IN(0xac100000u, 12) || IN(0xc0a80000u, 16)) return GUARD_PRIVATE;
    if (IN(0xa9fe0000u, 16)) return GUARD_LINK_LOCAL;
    if (IN(0x64400000u, 10)) return GUARD_CGNAT;
    if (IN(0xe0000000u, 4)) return GUARD_MULTICAST;
    if (IN(0xf0000000u, 4)) return GUARD_RESERVED;
    /* IETF protocol assignments, benchmarking, documentation. */
    if (IN(0xc0000000u, 24) || IN(0xc6120000u, 15) || IN(0xc0000200u, 24) ||
        IN(0xc6336400u, 24) || IN(0xcb007100u, 24))
        return GUARD_RESERVED;
#undef IN
    return GUARD_PUBLIC;
}

static bool all_zero(const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

/* The IPv4 address an IPv6 one stands for (mapped ::ffff:a.b.c.d,
 * translated ::ffff:0:a.b.c.d, compatible ::a.b.c.d, NAT64 64:ff9b::/96,
 * 6to4 2002:AABB:CCDD::/48), or NULL. */
static const unsigned char *embedded_v4(const unsigned char b[16]) {
    static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    if (all_zero(b, 10) && b[10] == 0xff && b[11] == 0xff) return b + 12;
    if (all_zero(b, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0) return b + 12;
    if (memcmp(b, nat64, 12) == 0) return b + 12;
    if (b[0] == 0x20 && b[1] == 0x02) return b + 2;
    /* ::a.b.c.d, but not :: and ::1 themselves. */
    if (all_zero(b, 12) && !(all_zero(b + 12, 3) && b[15] <= 1)) return b + 12;
    return NULL;
}

static enum guard_class classify_v6(const unsigned char b[16]) {
    if (all_zero(b, 16)) return GUARD_UNSPECIFIED;
    if (all_zero(b, 15) && b[15] == 1) return GUARD_LOOPBACK;
    const unsigned char *v4 = embedded_v4(b);
    if (v4) return classify_v4(v4);
    if (b[0] == 0xff) return GUARD_MULTICAST;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return GUARD_LINK_LOCAL;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return GUARD_RESERVED; /* old site-local */
    if ((b[0] & 0xfe) == 0xfc) return GUARD_UNIQUE_LOCAL;
    /* 2001:db8::/32 documentation, 100::/64 discard. */
    if ((b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) ||
        (b[0] == 0x01 && all_zero(b + 1, 7)))
        return GUARD_RESERVED;
    return GUARD_PUBLIC;
}

enum guard_class guard_classify(const struct sockaddr *sa) {
    if (!sa) return GUARD_RESERVED;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof in);
        return classify_v4((const unsigned char *)&in.sin_addr);
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof in6);
        return classify_v6(in6.sin6_addr.s6_addr);
    }
    return GUARD_RESERVED; /* nothing but IP is ever fine */
}

/* ---- the allowlist ---- */

static bool prefix_match(const unsigned char *a, const unsigned char *net, unsigned bits) {
    size_t whole = bits / 8;
    if (memcmp(a, net, whole) != 0) return false;
    unsigned rest = bits % 8;
    if (!rest) return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (net[whole] & mask);
}

static bool allowed(int family, const unsigned char *a) {
    for (size_t i = 0; i < n_allow; i++)
        if (allow[i].family == family && prefix_match(a, allow[i].addr, allow[i].prefix))
            return true;
    return false;
}

/* One "ADDR" or "ADDR/BITS" item; false when it is not one. */
static bool network_parse(const char *item, size_t len, struct network *out) {
    char buf[INET6_ADDRSTRLEN + 8];
    if (len == 0 || len >= sizeof buf) return false;
    memcpy(buf, item, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        if (!isdigit((unsigned char)slash[1])) return false;
        bits = strtol(slash + 1, &end, 10);
        if (*end) return false;
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (bits > 32) return false;
        out->prefix = bits < 0 ? 32 : (unsigned)bits;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        if (bits > 128) return false;
        out->prefix = bits < 0 ? 128 : (unsigned)bits;
    } else {
        return false;
    }
    return true;
}

/* Calls fn on each item; returns false at the first bad one. */
static bool networks_each(const char *list, struct network *out, size_t *n) {
    size_t count = 0;
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p)) p++;
        if (!*p) break;
        const char *end = p;
        while (*end && *end != ',' && !isspace((unsigned char)*end)) end++;
        struct network net;
        if (!network_parse(p, (size_t)(end - p), &net) || count >= MAX_NETWORKS) return false;
        if (out) out[count] = net;
        count++;
        p = end;
    }
    if (n) *n = count;
    return true;
}

const char *guard_networks_check(const char *list) {
    return networks_each(list, NULL, NULL)
               ? NULL
               : "must be empty or at most 64 IPv4/IPv6 networks (ADDRESS/BITS, or one ADDRESS) "
                 "separated by commas, e.g. 127.0.0.0/8, ::1/128";
}

a2ad_status guard_set_allow(const char *list) {
    struct network nets[MAX_NETWORKS];
    size_t n = 0;
    if (!networks_each(list, nets, &n)) return A2AD_ERR_INVALID;
    memcpy(allow, nets, n * sizeof *nets);
    n_allow = n;
    return A2AD_OK;
}

bool guard_address_ok(const struct sockaddr *sa, enum guard_class *why) {
    enum guard_class c = guard_classify(sa);
    if (why) *why = c;
    if (c == GUARD_PUBLIC) return true;
    if (sa && sa->sa_family == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof in);
        return allowed(AF_INET, (const unsigned char *)&in.sin_addr);
    }
    if (sa && sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof in6);
        if (allowed(AF_INET6, in6.sin6_addr.s6_addr)) return true;
        /* ::ffff:127.0.0.1 is allowed where 127.0.0.0/8 is. */
        const unsigned char *v4 = embedded_v4(in6.sin6_addr.s6_addr);
        return v4 && allowed(AF_INET, v4);
    }
    return false;
}

void guard_describe(const struct sockaddr *sa, enum guard_class c, char *buf, size_t n) {
    char text[INET6_ADDRSTRLEN] = "?";
    if (sa && sa->sa_family == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof in);
        inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
    } else if (sa && sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof in6);
        inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    }
    snprintf(buf, n, "%s is %s", text, guard_class_name(c));
}

/* ---- registration ---- */

static bool refuse(char *err, size_t errlen, const char *what, const char *name,
                   const struct sockaddr *sa, enum guard_class c) {
    char desc[INET6_ADDRSTRLEN + 80];
    guard_describe(sa, c, desc, sizeof desc);
    if (name)
        snprintf(err, errlen, "%s: %s resolves to %s; refused (see [webhooks] allow_networks)",
                 what, name, desc);
    else
        snprintf(err, errlen, "%s: %s; refused (see [webhooks] allow_networks)", what, desc);
    return false;
}

/* The host as it may be echoed: printable ASCII, bounded. */
static bool host_printable(const char *h) {
    size_t n = 0;
    for (; h[n]; n++)
        if (h[n] <= ' ' || h[n] > '~' || n > 253) return false;
    return n > 0;
}

bool guard_check_url(const char *url, const char *what, char *err, size_t errlen) {
    char *host = NULL;
    CURLU *u = curl_url();
    bool parsed = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && *host;
    curl_url_cleanup(u);
    if (!parsed) {
        curl_free(host);
        snprintf(err, errlen, "%s is not a valid http:// or https:// URL", what);
        return false;
    }
    bool ok = true;
    size_t hl = strlen(host);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    enum guard_class c;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        /* An IPv6 literal; a zone id ("%25eth0") does not change the class. */
        host[hl - 1] = '\0';
        char *zone = strchr(host + 1, '%');
        if (zone) *zone = '\0';
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) == 1 &&
            !guard_address_ok((struct sockaddr *)&ss, &c))
            ok = refuse(err, errlen, what, NULL, (struct sockaddr *)&ss, c);
        curl_free(host);
        return ok;
    }
    /* inet_aton reads every spelling of an IPv4 number the resolver does:
     * 2130706433, 0x7f.1, 0177.0.0.1, 127.1. */
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    if (inet_aton(host, &in->sin_addr)) {
        if (!guard_address_ok((struct sockaddr *)&ss, &c))
            ok = refuse(err, errlen, what, NULL, (struct sockaddr *)&ss, c);
        curl_free(host);
        return ok;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) == 0) {
        for (const struct addrinfo *ai = res; ai && ok; ai = ai->ai_next)
            if (!guard_address_ok(ai->ai_addr, &c))
                ok = refuse(err, errlen, what, host_printable(host) ? host : "the host",
                            ai->ai_addr, c);
        freeaddrinfo(res);
    }
    curl_free(host);
    return ok;
}
