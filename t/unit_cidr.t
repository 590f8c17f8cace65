# Unit tests of the CIDR parser in C (t/unit/cidr_test.c), built by the
# Makefile into build/: their TAP output is this file's.
exec "$ENV{WORKSIBLE_TOP}/build/cidr_test" or die "build/cidr_test: $!";
