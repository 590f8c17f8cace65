# The dashboard in a real browser: nginx serves build/dashboard (make) as
# the README's location does; traffic with known statuses goes through the
# API; t/dashboard/browser.js drives Debian's chromium (playwright-core
# from dashboard/package-lock.json, util/install-deps.sh installs both)
# and reports what the page showed; this script asserts it and the API's
# side: the plot counts the requests of each class, 4xx shows exactly the
# refused rows, paging reaches the oldest row, HTML in a path or a user
# agent is text, a key revoked in the page is refused, a key made in the
# page works, a key without request_logs:read gets a clear message, no
# request leaves the origin and the Content-Security-Policy holds (any
# console error fails). Screenshots: build/dashboard-test/.

use strict;
use warnings;

use File::Path qw(make_path);
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key psql psql_value http_config
    nginx_start nginx_stop http json);

my $top = $ENV{WORKSIBLE_TOP};
my $www = "$top/build/dashboard";
my $chromium = '/usr/bin/chromium';
my $shots = "$top/build/dashboard-test";

ok(-s "$www/index.html" && -s "$www/vendor/uPlot.iife.min.js",
   'build/dashboard holds the page and the vendored uPlot (make dashboard)')
    or BAIL_OUT('run make first');
ok(-x $chromium, "Debian's chromium is installed (util/install-deps.sh)")
    or BAIL_OUT('no chromium');
ok(-d "$top/dashboard/node_modules/playwright-core",
   'playwright-core is installed (util/install-deps.sh: npm ci in dashboard/)')
    or BAIL_OUT('no playwright-core');
make_path($shots);
unlink glob "$shots/*.png";

# the location of the README and conf/nginx.conf.example
my $csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        . "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
nginx_start(name => 'dashboard', port => 1963, http => http_config(), server => qq{
        worksible_errors on;
        location /v1/ { worksible_auth on; worksible_rate_limit on;
                        worksible_idempotency on; worksible_api; }
        location /dashboard/ {
            alias $www/;
            index index.html;
            types { text/html html; text/css css; text/javascript js; image/svg+xml svg; }
            default_type application/octet-stream;
            add_header Content-Security-Policy "$csp" always;
            add_header X-Content-Type-Options nosniff always;
            add_header Referrer-Policy no-referrer always;
            add_header Cache-Control no-cache always;
        }});

my $page = http('GET', '/dashboard/');
is($page->{status}, 200, 'GET /dashboard/: the page');
is($page->{headers}{'content-security-policy'}, $csp, 'with a strict Content-Security-Policy');
unlike($page->{body}, qr{(?:src|href)="(?:https?:)?//}i, 'it names nothing of another origin');
unlike($page->{body}, qr{<script>|<style>|\son\w+=}i, 'no inline script, style or handler');
is(http('GET', '/dashboard/vendor/uPlot.iife.min.js')->{status}, 200, 'uPlot is served from here');

# --- traffic with known statuses, from one key ------------------------------------------------

my $cmp = company(plan => 'growth');
my $admin = api_key($cmp, join(' ', map { "$_:write" } qw(company freelancers projects contracts
    timesheets invoices payments payouts api_keys)) . ' request_logs:read');
my $traffic = api_key($cmp, 'company:read', name => 'traffic');
my $victim = api_key($cmp, 'company:read', name => 'victim');
my $noscope = api_key($cmp, 'company:read', name => 'no logs');
my %t = (Authorization => "Bearer $traffic->{key}");
my $script = '/v1/<script>window.pwned=1</script>';
my $ua = '<img src=x onerror="window.pwned=2">';
my $ua_path = '/v1/agent';

my (@sent, %status);
sub traffic {
    my ($method, $path, $want, %h) = @_;
    my $res = http($method, $path, { %t, %h });
    is($res->{status}, $want, "traffic: $method $path is $want");
    push @sent, $res->{headers}{'x-request-id'};
    $status{ $res->{headers}{'x-request-id'} } = $want;
    sleep 0.01;
}
traffic('GET', '/v1/companies/me', 200) for 1 .. 24;
traffic('GET', '/v1/nothing', 404) for 1 .. 2;
traffic('GET', $script, 404);
traffic('GET', '/v1/invoices', 403);
traffic('DELETE', '/v1/companies/me', 405);
traffic('GET', $ua_path, 404, 'User-Agent' => $ua);
traffic('GET', '/v1/companies/me', 200) for 1 .. 2;
is(http('GET', '/v1/companies/me', { Authorization => "Bearer $victim->{key}" })->{status}, 200,
   'the victim key works (and gets a last_used_at)');
my @refused = grep { $status{$_} >= 400 } @sent;
is(scalar @refused, 6, '6 of the traffic are 4xx');

my $deadline = time + 10;
sleep 0.3 until (psql_value("SELECT count(*) FROM request_logs WHERE api_key_id = '$traffic->{id}'") == @sent
                 && psql_value("SELECT last_used_at IS NOT NULL FROM api_keys WHERE id = '$victim->{id}'") eq 't')
                || time > $deadline;
is(psql_value("SELECT count(*) FROM request_logs WHERE api_key_id = '$traffic->{id}'"), scalar @sent,
   'every request of the traffic is in the log');

# a company with more than one page of keys (100): the page's own key, the
# oldest, is on the second page of GET /v1/api_keys
my $many = company(plan => 'growth');
my $many_admin = api_key($many, 'company:read request_logs:read api_keys:write', name => 'many admin');
api_key($many, 'company:read', name => "many $_") for 1 .. 100;

# --- the browser -------------------------------------------------------------------------------

my $input = json()->encode({ origin => 'http://127.0.0.1:1963', admin => $admin->{key},
    many_admin => $many_admin->{key},
    traffic_key_id => $traffic->{id}, noscope => $noscope->{key}, victim_id => $victim->{id},
    ua_path => $ua_path, chromium => $chromium });
$ENV{DASHBOARD_TEST} = $input;
$ENV{DASHBOARD_SHOTS} = $shots;
$ENV{NODE_PATH} = "$top/dashboard/node_modules";
my $stdout = `node $top/t/dashboard/browser.js 2>$shots/browser.err`;
my $rc = $? >> 8;
is($rc, 0, 'the browser went through every step')
    or diag(do { local (@ARGV, $/) = ("$shots/browser.err"); <> });
my $saw = eval { json()->decode($stdout) } // {};

is_deeply($saw->{console}, [], 'no console error or warning (a CSP violation would be one)');
is_deeply($saw->{foreign}, [], 'no request to another origin');

# keys
is($saw->{focus_at_start}, 'key', 'the page opens with the focus in the key field');
like($saw->{bad_key_message}, qr/^This key was refused: /, 'a wrong key: refused, saying so');
is($saw->{bad_key_stored}, undef, '... and not kept');
is($saw->{session_key}, $admin->{key}, 'the key is in sessionStorage');
is($saw->{local_storage}, 0, '... not in localStorage');
is($saw->{cookies}, 0, '... nor in a cookie');
like($saw->{company}, qr/\Q$cmp\E/, 'the company is named');

# the plot
is_deeply($saw->{plot}{sums}, { '1xx' => 0, '2xx' => 26, '3xx' => 0, '4xx' => 6, '5xx' => 0 },
          'the plot: the requests of each class');
ok(($saw->{plot}{buckets} // 0) == 60 || $saw->{plot}{buckets} == 61, 'the last hour by minute')
    or diag($saw->{plot}{buckets});
is_deeply($saw->{latency_series}, [qw(p50 p95 p99)], 'the latency plot: p50, p95, p99');
is_deeply($saw->{totals}, [ 0, 26, 0, 6, 0, 0, 1, 0 ], 'the totals: 26 2xx, 6 4xx, one 403 refusal');
like($saw->{usage}, qr/^Plan "growth": \d+ of 600 requests left \(per 60 s/, 'rate-limit usage against the plan');

# paging
my @newest_first = reverse @sent;
is(scalar @{ $saw->{pages} }, 2, 'two pages of 20');
is_deeply([ map { @$_ } @{ $saw->{pages} } ], \@newest_first, 'paging shows every row, newest first');
is($saw->{pages}[-1][-1], $sent[0], '... down to the oldest');
is($saw->{older_at_first}, 'enabled', 'Older on the first page');
is($saw->{newer_at_first}, 'disabled', 'no Newer on the first page');
is($saw->{newer_at_last}, 'enabled', 'Newer on the last page');
is_deeply($saw->{back}, $saw->{pages}[0], 'Newer goes back to the first page');

# 4xx
is_deeply([ sort @{ $saw->{refused} } ], [ sort @refused ], 'filtering by 4xx shows exactly the refused rows');
is_deeply([ sort @{ $saw->{refused_statuses} } ], [ sort map { $status{$_} } @refused ], '... with their statuses');
is_deeply($saw->{plot_4xx}, [ 0, 0, 0, 6, 0 ], '... and the plot only them');

# HTML is text
ok((grep { $_ eq $script } @{ $saw->{paths} }), 'a path holding <script> is shown as text');
is($saw->{scripts_in_table}, 0, '... no element was made of it');
is($saw->{pwned}, 'undefined', '... nothing of it ran');
is($saw->{detail}{user_agent}, $ua, 'a user agent holding HTML, as text in the details');
is($saw->{detail_imgs}, 0, '... no element made of it');

# details
my $ua_id = $sent[29];
is($saw->{detail}{id}, $ua_id, 'the details of the row chosen with the keyboard');
is_deeply([ sort keys %{ $saw->{detail} } ],
          [ sort qw(object id api_key_id method path status latency_ms ip user_agent
                    idempotency_key replayed ratelimit_remaining created_at) ], 'all its fields');
is($saw->{detail}{path}, $ua_path, '... its path');
is($saw->{copied_message}, 'Copied.', 'the request id copied');
is($saw->{clipboard}, $ua_id, '... to the clipboard');
is($saw->{focus_after_close}, "Details of request $ua_id", 'Escape closes, the focus back on the row');

# keys
my %keys = map { $_->{id} => $_ } @{ $saw->{keys} };
ok($keys{ $victim->{id} }, 'the victim key is listed');
like($keys{ $victim->{id} }{cells}[3], qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, '... with its last_used_at');
is($keys{ $noscope->{id} }{cells}[3], 'never', 'a key never used: never');
ok($keys{ $victim->{id} }{revoke}, 'a Revoke button (the key holds api_keys:write)');
is($keys{ $admin->{id} }{cells}[5], 'this key', 'the page\'s own key is marked, not revocable');
unlike(join(' ', map { @{ $_->{cells} } } @{ $saw->{keys} }), qr/wsk_live_\w{12}_/, 'no secret in the list');
like($saw->{dialogs}[0] // '', qr/^Revoke the key "victim"/, 'revoking asks first');
like($saw->{victim_after}{state}, qr/^revoked \d{4}-/, 'the page shows it revoked');
ok(!$saw->{victim_after}{revoke}, '... without a button');
my $refused = http('GET', '/v1/companies/me', { Authorization => "Bearer $victim->{key}" });
is($refused->{status}, 401, 'the API refuses the key revoked in the page');
is(json()->decode($refused->{body})->{code}, 'api_key_revoked', 'api_key_revoked');

ok((grep { $_ eq 'request_logs:read' } @{ $saw->{new_scopes} }), 'a new key may have the page key\'s scopes');
like($saw->{created_key}, qr/^wsk_live_[a-z0-9]{12}_[A-Za-z0-9]{32}$/, 'a key made in the page is shown');
is($saw->{created_after_done}, '', '... once');
ok(!$saw->{page_text_has_key}, '... and is nowhere on the page after');
is(http('GET', '/v1/companies/me', { Authorization => "Bearer $saw->{created_key}" })->{status}, 200,
   'the key made in the page works');
is(psql_value("SELECT name || ' ' || array_to_string(scopes, ',') FROM api_keys
               WHERE company_id = '$cmp' AND key_id = '" . substr($saw->{created_key} // '', 9, 12) . "'"),
   'made in the browser company:read', '... with its name and scope');

# 360 px, forgetting, no scope
ok($saw->{narrow}{scroll} <= 360, "at 360 px nothing is wider than the screen ($saw->{narrow}{scroll})");
ok($saw->{narrow}{chart} <= 340, "the plot fits ($saw->{narrow}{chart} px)");
is($saw->{after_forget}, undef, 'Forget key empties sessionStorage');
is($saw->{noscope_message}, 'This key cannot read the request log: it needs the request_logs:read scope.',
   'a key without request_logs:read: a clear message');
is($saw->{noscope_keys_message}, 'This key cannot list the API keys: it needs the api_keys:read scope.',
   '... and for the keys');
ok($saw->{noscope_charts_hidden}, '... and no plot');

# a key with api_keys:write whose own row is not in the first 100 keys
ok($saw->{many}{rows} >= 100, "101 keys: the first page of keys is listed ($saw->{many}{rows} rows)");
ok($saw->{many}{create_visible},
   '... and a key holding api_keys:write is offered the form to create a key (its scopes are not '
   . 'only known when its own row is on the first page)');
ok($saw->{many}{revoke_buttons} > 0, '... and Revoke for the other keys')
    or diag("revoke buttons: $saw->{many}{revoke_buttons}");

# Apply 4xx, then Apply 2xx while the 4xx answers are still on their way:
# the page shows what its filters say, not the answer that came last
is($saw->{race}{filter}, '2xx', 'the filter chosen last: 2xx');
is($saw->{race}{totals}[3], '0', '... the totals count no 4xx (not the late answer of the 4xx filter)')
    or diag(join ' ', @{ $saw->{race}{totals} // [] });
ok(@{ $saw->{race}{statuses} // [] } > 0
   && !(grep { !/^2\d\d$/ } @{ $saw->{race}{statuses} }),
   '... the log shows only 2xx rows') or diag(join ' ', @{ $saw->{race}{statuses} // [] });

ok(-s "$shots/$_", "screenshot build/dashboard-test/$_")
    for qw(dashboard.png dashboard-detail.png dashboard-keys.png dashboard-360.png dashboard-noscope.png);

nginx_stop();
done_testing();
