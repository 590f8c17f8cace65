/*
 * Strict CIDR blocks (see ngx_worksible_cidr.h).
 */

#include <stdio.h>
#include <string.h>

#include "ngx_worksible_cidr.h"


/* the first 12 bytes of an IPv4-mapped IPv6 address */
static const u_char  ngx_worksible_cidr_mapped[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};


static int ngx_worksible_cidr_ipv4(const char *s);
static int ngx_worksible_cidr_prefix_match(const u_char *net,
    const u_char *addr, unsigned prefix);


int
ngx_worksible_cidr_parse(const char *s, size_t len,
    ngx_worksible_cidr_t *cidr, char *why, size_t size)
{
    size_t       n;
    unsigned     max, i, bits;
    const char  *slash, *q, *end;
    char         addr[INET6_ADDRSTRLEN + 1];

    end = s + len;
    slash = memchr(s, '/', len);
    n = (slash != NULL) ? (size_t) (slash - s) : len;

    if (n == 0 || n >= sizeof(addr) || memchr(s, '\0', len) != NULL) {
        snprintf(why, size, "not an IP address");
        return -1;
    }

    memcpy(addr, s, n);
    addr[n] = '\0';

    memset(cidr, 0, sizeof(ngx_worksible_cidr_t));

    if (strchr(addr, ':') != NULL) {
        cidr->family = AF_INET6;
        max = 128;

        if (inet_pton(AF_INET6, addr, cidr->addr) != 1) {
            snprintf(why, size, "not an IPv6 address");
            return -1;
        }

    } else {
        cidr->family = AF_INET;
        max = 32;

        if (!ngx_worksible_cidr_ipv4(addr)
            || inet_pton(AF_INET, addr, cidr->addr) != 1)
        {
            snprintf(why, size, "not an IPv4 address (four decimal octets "
                     "0..255 without leading zeros)");
            return -1;
        }
    }

    cidr->prefix = max;

    if (slash != NULL) {
        q = slash + 1;

        if (q == end) {
            snprintf(why, size, "empty prefix length");
            return -1;
        }

        if (q[0] == '0' && q + 1 != end) {
            snprintf(why, size, "leading zero in the prefix length");
            return -1;
        }

        cidr->prefix = 0;

        for ( /* void */ ; q < end; q++) {
            if (*q < '0' || *q > '9' || cidr->prefix > max) {
                snprintf(why, size, "the prefix length must be 0..%u", max);
                return -1;
            }

            cidr->prefix = cidr->prefix * 10 + (*q - '0');
        }

        if (cidr->prefix > max) {
            snprintf(why, size, "the prefix length must be 0..%u", max);
            return -1;
        }
    }

    for (i = 0; i < max / 8; i++) {
        bits = (cidr->prefix > i * 8) ? cidr->prefix - i * 8 : 0;

        if (bits < 8
            && (cidr->addr[i] & (u_char) (0xff >> bits)) != 0)
        {
            snprintf(why, size, "host bits are set after the prefix");
            return -1;
        }
    }

    /* ::ffff:a.b.c.d/96+n is the IPv4 block a.b.c.d/n (RFC 4291, 2.5.5.2) */

    if (cidr->family == AF_INET6 && cidr->prefix >= 96
        && memcmp(cidr->addr, ngx_worksible_cidr_mapped, 12) == 0)
    {
        cidr->family = AF_INET;
        cidr->prefix -= 96;
        memmove(cidr->addr, cidr->addr + 12, 4);
        memset(cidr->addr + 4, 0, 12);
    }

    return 0;
}


/* four decimal octets 0..255, no leading zeros, nothing else */

static int
ngx_worksible_cidr_ipv4(const char *s)
{
    int  parts, digits, v;

    for (parts = 1; /* void */ ; parts++, s++) {

        for (digits = 0, v = 0; s[digits] >= '0' && s[digits] <= '9';
             digits++)
        {
            if (digits == 3) {
                return 0;
            }

            v = v * 10 + (s[digits] - '0');
        }

        if (digits == 0 || v > 255 || (digits > 1 && s[0] == '0')) {
            return 0;
        }

        s += digits;

        if (*s == '\0') {
            return parts == 4;
        }

        if (*s != '.' || parts == 4) {
            return 0;
        }
    }
}


size_t
ngx_worksible_cidr_text(const ngx_worksible_cidr_t *cidr, char *out)
{
    char  net[INET6_ADDRSTRLEN];

    inet_ntop(cidr->family, cidr->addr, net, sizeof(net));

    return (size_t) snprintf(out, NGX_WORKSIBLE_CIDR_TEXT_LEN, "%s/%u", net,
                             cidr->prefix);
}


int
ngx_worksible_cidr_match(const ngx_worksible_cidr_t *cidr, int family,
    const u_char *addr)
{
    u_char  v6[16];

    /* a.b.c.d and ::ffff:a.b.c.d are one address: match it as both */

    if (family == AF_INET) {
        memcpy(v6, ngx_worksible_cidr_mapped, 12);
        memcpy(v6 + 12, addr, 4);

        return cidr->family == AF_INET
               ? ngx_worksible_cidr_prefix_match(cidr->addr, addr,
                                                 cidr->prefix)
               : ngx_worksible_cidr_prefix_match(cidr->addr, v6,
                                                 cidr->prefix);
    }

    if (cidr->family == AF_INET6) {
        return ngx_worksible_cidr_prefix_match(cidr->addr, addr,
                                               cidr->prefix);
    }

    return memcmp(addr, ngx_worksible_cidr_mapped, 12) == 0
           && ngx_worksible_cidr_prefix_match(cidr->addr, addr + 12,
                                              cidr->prefix);
}


/* 1 when the first prefix bits of net and addr are equal */

static int
ngx_worksible_cidr_prefix_match(const u_char *net, const u_char *addr,
    unsigned prefix)
{
    unsigned  whole, rest;

    whole = prefix / 8;
    rest = prefix % 8;

    if (memcmp(net, addr, whole) != 0) {
        return 0;
    }

    return rest == 0
           || ((net[whole] ^ addr[whole]) & (u_char) (0xff << (8 - rest))) == 0;
}
