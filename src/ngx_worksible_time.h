/*
 * RFC 3339 date-times (section 5.6), shared by the module and the
 * `worksible` CLI: one parser, so that the API and the CLI accept the same
 * times. Plain C: no nginx headers.
 */

#ifndef _NGX_WORKSIBLE_TIME_H_INCLUDED_
#define _NGX_WORKSIBLE_TIME_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* the longest text taken: 35 characters, a 9-digit fraction and an offset */
#define NGX_WORKSIBLE_RFC3339_MAX    64

/* "YYYY-MM-DD HH:MM:SS.ffffff+00" and its NUL */
#define NGX_WORKSIBLE_RFC3339_CANON  32


/*
 * Parses text (len bytes): YYYY-MM-DDTHH:MM:SS, an optional fraction,
 * then Z or +HH:MM/-HH:MM (offsets up to 23:59); "T" and "Z" may be lower
 * case (the RFC's note), nothing else is accepted (no space for T, no
 * missing seconds or zone). Second 60 only as a leap second, 23:59:60 UTC
 * on the last day of a month; no year 0000. Outputs the instant as *sec
 * (Unix seconds) and *usec (the fraction cut to microseconds) and canon
 * (size bytes, NGX_WORKSIBLE_RFC3339_CANON is enough), "YYYY-MM-DD
 * HH:MM:SS.ffffff+00" in UTC, for PostgreSQL. Returns 0, or -1 with *why
 * set to a reason.
 */
int ngx_worksible_rfc3339_parse(const char *text, size_t len, char *canon,
    size_t size, int64_t *sec, long *usec, const char **why);


#endif /* _NGX_WORKSIBLE_TIME_H_INCLUDED_ */
