/*
 * The module's version: the one place it is written. The CLI prints it
 * (worksible --version), the Debian package takes it (util/deb.sh), and
 * CHANGELOG.md's first entry must name it (t/package.t checks).
 */

#ifndef _NGX_WORKSIBLE_VERSION_H_INCLUDED_
#define _NGX_WORKSIBLE_VERSION_H_INCLUDED_


#define NGX_WORKSIBLE_VERSION  "0.15.0"


#endif /* _NGX_WORKSIBLE_VERSION_H_INCLUDED_ */
