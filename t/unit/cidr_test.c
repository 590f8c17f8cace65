/*
 * Unit tests of the strict CIDR parser and matcher
 * (src/ngx_worksible_cidr.c), printing TAP (t/unit_cidr.t runs it).
 */

#include <stdio.h>
#include <string.h>

#include "ngx_worksible_cidr.h"
#include "tap.h"


/* parses s; when canonical is given, also compares the canonical text */

static int
parses(const char *s, const char *canonical)
{
    char                  why[128], text[NGX_WORKSIBLE_CIDR_TEXT_LEN];
    ngx_worksible_cidr_t  cidr;

    if (ngx_worksible_cidr_parse(s, strlen(s), &cidr, why, sizeof(why)) != 0)
    {
        return 0;
    }

    ngx_worksible_cidr_text(&cidr, text);

    return canonical == NULL || strcmp(text, canonical) == 0;
}


static int
matches(const char *block, int family, const char *addr)
{
    char                  why[128];
    unsigned char         a[16];
    ngx_worksible_cidr_t  cidr;

    if (ngx_worksible_cidr_parse(block, strlen(block), &cidr, why,
                                 sizeof(why))
        != 0
        || inet_pton(family, addr, a) != 1)
    {
        return -1;
    }

    return ngx_worksible_cidr_match(&cidr, family, a);
}


int
main(void)
{
    size_t  i;
    char    name[160];

    static const char  *good[][2] = {
        { "10.0.0.0/8", "10.0.0.0/8" },
        { "192.0.2.7", "192.0.2.7/32" },
        { "0.0.0.0/0", "0.0.0.0/0" },
        { "255.255.255.255/32", "255.255.255.255/32" },
        { "2001:db8::/32", "2001:db8::/32" },
        { "2001:DB8:0:0::1", "2001:db8::1/128" },
        { "::/0", "::/0" },
        { "::1/128", "::1/128" },
        { "::ffff:198.51.100.0/120", "198.51.100.0/24" },
        { "::ffff:198.51.100.10", "198.51.100.10/32" },
        { "::ffff:0.0.0.0/96", "0.0.0.0/0" },
        { "::fffe:0:0/95", "::fffe:0:0/95" },
        { NULL, NULL }
    };

    static const char  *bad[] = {
        "", "10", "10.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/08",
        "010.0.0.0/8", "256.1.1.1", "10.0.0.1/8", "10.0.0.0/-1",
        "10.0.0.0/8x", "1.2.3.4.5", "::/129", "2001:db8::1/32",
        "2001:db8::/", "gggg::/16", "10.0.0.0 /8", NULL
    };

    for (i = 0; good[i][0]; i++) {
        snprintf(name, sizeof(name), "accepted as %s: \"%s\"", good[i][1],
                 good[i][0]);
        ok(parses(good[i][0], good[i][1]), name);
    }

    for (i = 0; bad[i]; i++) {
        snprintf(name, sizeof(name), "refused: \"%s\"", bad[i]);
        ok(!parses(bad[i], NULL), name);
    }

    ok(matches("10.0.0.0/8", AF_INET, "10.255.1.2") == 1, "inside /8");
    ok(matches("10.0.0.0/8", AF_INET, "11.0.0.1") == 0, "outside /8");
    ok(matches("192.0.2.0/25", AF_INET, "192.0.2.127") == 1,
       "inside /25 at its end");
    ok(matches("192.0.2.0/25", AF_INET, "192.0.2.128") == 0,
       "outside /25 just after");
    ok(matches("0.0.0.0/0", AF_INET, "203.0.113.9") == 1, "/0 holds all");
    ok(matches("192.0.2.7", AF_INET, "192.0.2.7") == 1, "a host route");
    ok(matches("192.0.2.7", AF_INET, "192.0.2.8") == 0,
       "a host route only");
    ok(matches("2001:db8::/32", AF_INET6, "2001:db8:ffff::1") == 1,
       "inside an IPv6 /32");
    ok(matches("2001:db8::/32", AF_INET6, "2001:db9::1") == 0,
       "outside an IPv6 /32");
    ok(matches("10.0.0.0/8", AF_INET6, "::ffff:10.1.2.3") == 1,
       "an IPv4-mapped IPv6 address matches its IPv4 block");
    ok(matches("10.0.0.0/8", AF_INET6, "::ffff:11.1.2.3") == 0,
       "... and only its own");
    ok(matches("10.0.0.0/8", AF_INET6, "::10.1.2.3") == 0,
       "an IPv4-compatible address is not mapped");
    ok(matches("::/0", AF_INET, "10.0.0.1") == 1,
       "::/0 holds an IPv4 client (::ffff:10.0.0.1)");
    ok(matches("::/0", AF_INET6, "::ffff:10.0.0.1") == 1,
       "::/0 holds an IPv4 client of a dual-stack listener");
    ok(matches("2001:db8::/32", AF_INET, "10.0.0.1") == 0,
       "another IPv6 block holds no IPv4 client");
    ok(matches("::ffff:198.51.100.0/120", AF_INET, "198.51.100.10") == 1,
       "a mapped block holds its IPv4 clients ...");
    ok(matches("::ffff:198.51.100.0/120", AF_INET6, "::ffff:198.51.100.10")
       == 1, "... in either form");
    ok(matches("::ffff:198.51.100.0/120", AF_INET, "198.51.101.10") == 0,
       "and no other");
    ok(matches("198.51.100.0/24", AF_INET6, "::ffff:198.51.100.10") == 1,
       "an IPv4 block holds the mapped form of its clients");

    return tap_done();
}
