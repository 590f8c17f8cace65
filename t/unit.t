# Unit tests in C (t/unit/*_test.c), built by the Makefile into build/:
# their TAP output is this file's.
exec "$ENV{WORKSIBLE_TOP}/build/key_test" or die "build/key_test: $!";
