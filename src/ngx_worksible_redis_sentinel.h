/*
 * Redis Sentinel for worksible_redis (sentinel=MASTER_NAME): the primary's
 * address is asked of the Sentinels, and followed when it changes.
 *
 * Each worker asks a Sentinel "SENTINEL get-master-addr-by-name NAME" on
 * its own hiredis async connection on the event loop, the Sentinels one
 * after the other (the one that answered last first), each within
 * connect_timeout, until one names the primary. The Redis connection
 * (ngx_worksible_redis.c) connects to that address and checks with ROLE
 * that it is a master. The Sentinels are asked again when the connection to
 * the primary is lost or stalls, when ROLE says it is not a master, and
 * when a command is answered READONLY (the primary became a replica).
 *
 * A second connection stays subscribed to +switch-master on one Sentinel
 * (the next one, 1 s later, when it is lost; the Sentinels are asked again
 * once it is subscribed, for a switch missed meanwhile): on a message for
 * NAME the Redis connection is made to the new primary at once, without a
 * reload; the commands outstanding on the old one follow the resend rules
 * of ngx_worksible_redis.h.
 *
 * When no Sentinel answers, the last primary named is kept (it may still be
 * up); when none was ever named, Redis counts as down (its breaker opens).
 * Sentinels must announce numeric addresses (resolve-hostnames no, the
 * default): a host name would need the blocking getaddrinfo().
 */

#ifndef _NGX_WORKSIBLE_REDIS_SENTINEL_H_INCLUDED_
#define _NGX_WORKSIBLE_REDIS_SENTINEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>


struct ngx_worksible_redis_s;
typedef struct ngx_worksible_redis_sentinel_s  ngx_worksible_redis_sentinel_t;


/* one Sentinel of worksible_redis */
typedef struct {
    ngx_str_t                       display;      /* as configured */
    char                           *addr;         /* numeric */
    int                             port;
} ngx_worksible_redis_sentinel_addr_t;


typedef struct {
    ngx_str_t                       name;         /* the master name */
    ngx_str_t                       password;     /* len 0: no AUTH */
    ngx_array_t                    *addrs;        /* of the above */
} ngx_worksible_redis_sentinel_conf_t;


/*
 * The "sentinel=NAME" and "sentinel_password_file=FILE" parameters of
 * worksible_redis into *conf (allocated on the first): NGX_OK, NGX_DECLINED
 * when arg is neither, NGX_ERROR (logged for nginx -t).
 */
ngx_int_t ngx_worksible_redis_sentinel_option(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_worksible_redis_sentinel_conf_t **conf);

/*
 * The Sentinels' addresses (host[:port], default port 26379, resolved now)
 * into conf, and the form checked: a master name, no password file without
 * it. NGX_OK or NGX_ERROR (logged for nginx -t).
 */
ngx_int_t ngx_worksible_redis_sentinel_conf(ngx_conf_t *cf, ngx_str_t *args,
    ngx_uint_t naddrs, ngx_worksible_redis_sentinel_conf_t *conf);

/*
 * This worker's Sentinel client for redis (init_process): subscribes and
 * asks for the primary at once. timeout (ms) bounds each Sentinel's answer.
 * NULL: no memory.
 */
ngx_worksible_redis_sentinel_t *ngx_worksible_redis_sentinel_create(
    struct ngx_worksible_redis_s *redis,
    ngx_worksible_redis_sentinel_conf_t *conf,
    ngx_msec_t timeout, ngx_cycle_t *cycle);

/* closes its connections (exit_process) */
void ngx_worksible_redis_sentinel_close(ngx_worksible_redis_sentinel_t *s);

/*
 * The primary to connect to: NGX_OK with *addr (numeric, NUL-terminated)
 * and *port, or NGX_DECLINED while the Sentinels are being asked (asked
 * now when no primary is known): ngx_worksible_redis_primary() or
 * ngx_worksible_redis_no_primary() follows.
 */
ngx_int_t ngx_worksible_redis_sentinel_primary(
    ngx_worksible_redis_sentinel_t *s, char **addr, int *port);

/*
 * The primary may have changed (its connection lost or stalled, READONLY,
 * ROLE not master; why for the log): the Sentinels are asked again, unless
 * they are being asked.
 */
void ngx_worksible_redis_sentinel_ask(ngx_worksible_redis_sentinel_t *s,
    const char *why);

/* NGX_OK when a ROLE reply says "master" */
ngx_int_t ngx_worksible_redis_sentinel_role(redisReply *reply);


#endif /* _NGX_WORKSIBLE_REDIS_SENTINEL_H_INCLUDED_ */
