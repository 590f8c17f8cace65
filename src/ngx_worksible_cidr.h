/*
 * Strict CIDR blocks (RFC 4632, RFC 4291 section 2.3) for key IP
 * allowlists, shared by the module and the `worksible` CLI. Plain C: no
 * nginx headers.
 *
 * Stricter than PostgreSQL's cidr input, which widens ("10" becomes
 * 10.0.0.0/8) and accepts leading zeros: never rely on it to validate.
 */

#ifndef _NGX_WORKSIBLE_CIDR_H_INCLUDED_
#define _NGX_WORKSIBLE_CIDR_H_INCLUDED_


#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>


/* the longest canonical text: an IPv6 address, "/", 3 digits, NUL */
#define NGX_WORKSIBLE_CIDR_TEXT_LEN  (INET6_ADDRSTRLEN + 5)


typedef struct {
    int       family;       /* AF_INET or AF_INET6 */
    u_char    addr[16];     /* network, 4 or 16 bytes used */
    unsigned  prefix;       /* bits: 0..32 or 0..128 */
} ngx_worksible_cidr_t;


/*
 * Parses "address[/prefix]" (len bytes, need not be NUL-terminated): IPv4
 * as four decimal octets 0..255 without leading zeros, or IPv6 as
 * inet_pton(3) reads it; a bare address is a host route (/32, /128); the
 * prefix has no leading zero and fits the family; host bits after the
 * prefix are refused. An IPv4-mapped block of /96 or longer
 * (::ffff:198.51.100.0/120) becomes the IPv4 block it means
 * (198.51.100.0/24). Returns 0, or -1 with a reason in why (size bytes).
 */
int ngx_worksible_cidr_parse(const char *s, size_t len,
    ngx_worksible_cidr_t *cidr, char *why, size_t size);

/* writes the canonical "network/prefix" with a NUL; returns its length */
size_t ngx_worksible_cidr_text(const ngx_worksible_cidr_t *cidr, char *out);

/*
 * 1 when addr (4 bytes for AF_INET, 16 for AF_INET6) is inside cidr. An
 * IPv4 address and its IPv4-mapped IPv6 form (::ffff:a.b.c.d, as a
 * dual-stack listener shows IPv4 clients) are the same address: either
 * form is inside an IPv4 block that holds a.b.c.d and inside an IPv6 block
 * that holds ::ffff:a.b.c.d (::/0 holds every client).
 */
int ngx_worksible_cidr_match(const ngx_worksible_cidr_t *cidr, int family,
    const u_char *addr);


#endif /* _NGX_WORKSIBLE_CIDR_H_INCLUDED_ */
