#!/usr/bin/perl

# The Debian package on this machine: installs the .deb named by
# IOTHUB_TWIN_TEST_DEB ("make test-deb" builds it and sets it), checks what
# it put where, runs "nginx -t" on the system configuration (which loads
# the module through /etc/nginx/modules-enabled) and on the installed
# example, starts nginx with the installed module and example in front of
# the hub emulator and sends one update, then purges the package and checks
# that nothing of it is left.  A failure or a signal in the middle still
# purges.  When the package is already installed, the test changes nothing
# and fails: it cannot leave the machine as it found it.

use strict;
use warnings;

my $SO = '/usr/lib/nginx/modules/ngx_http_iothub_twin_module.so';

BEGIN {
    $ENV{IOTHUB_TWIN_MODULE} = '/usr/lib/nginx/modules/'
                               . 'ngx_http_iothub_twin_module.so';
}

use Cwd qw(abs_path);
use File::Spec;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin;
use NodeExample;

my $DEB = $ENV{IOTHUB_TWIN_TEST_DEB}
    or plan skip_all => 'set IOTHUB_TWIN_TEST_DEB to a .deb ("make test-deb")';

my $PKG = 'libnginx-mod-http-iothub-twin';
my $DOC = "/usr/share/doc/$PKG";
my $AVAILABLE = '/usr/share/nginx/modules-available/mod-http-iothub-twin.conf';
my $ENABLED = '/etc/nginx/modules-enabled/50-mod-http-iothub-twin.conf';
my @SUDO = $> == 0 ? () : ('sudo', '-n');
my @APT = (@SUDO, 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', '-y',
           '-q', '-o', 'DPkg::Lock::Timeout=300');

# what the package may create: all of it must be gone again at the end
my @TRACES = ($SO, '/usr/lib/nginx/modules', '/usr/lib/nginx',
              '/usr/share/nginx/modules-available', $AVAILABLE, $ENABLED,
              "$ENABLED.removed", $DOC);

sub status {
    my $s = `dpkg-query -W -f='\${db:Status-Status}' $PKG 2>/dev/null`;
    return $s eq '' ? 'not-installed' : $s;
}

# apt-get, its output kept for a failure
sub apt {
    my $cmd = join ' ', map { "'$_'" } @APT, @_;
    return scalar `$cmd 2>&1`;
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    return scalar <$fh>;
}

sub exists_now { map { $_ => (-e $_ || -l $_) ? 1 : 0 } @TRACES }

if (status() ne 'not-installed') {
    BAIL_OUT("$PKG is already on this machine (" . status() . "): the test "
             . "installs and purges it, so it will not touch an "
             . "installation it did not make; remove it first");
}

$DEB = File::Spec->rel2abs($DEB);
ok(-f $DEB, "the package file: $DEB") or BAIL_OUT('no package file');

my %before = exists_now();

# installing must add this package only: anything else would stay behind

my @sim = grep { /^Inst / } `apt-get -s -q install $DEB 2>&1`;
is_deeply([map { (split ' ')[1] } @sim], [$PKG],
          'installing the .deb adds no other package')
    or BAIL_OUT("apt-get would install: @sim");

my $t;
my $installed = 0;

sub purge {
    return unless $installed;
    $installed = 0;
    $t->stop if $t;
    my $out = apt('purge', $PKG);
    diag "apt-get purge $PKG failed:\n$out" if $?;
}

$SIG{INT} = $SIG{TERM} = sub { purge(); exit 1 };

END { purge() }

$installed = 1;
my $out = apt('--no-install-recommends', 'install', $DEB);
is($?, 0, 'apt-get install of the .deb') or diag $out;
is(status(), 'installed', 'dpkg: installed');

eval {
    installed_files();
    system_configuration();
    installed_module_serves();
    1;
} or fail("died: $@");

purge();

is(status(), 'not-installed', 'dpkg: purged');
is_deeply({ exists_now() }, \%before,
          'nothing of the package is left (module, load file, link, docs)');

done_testing;


sub installed_files {
    ok(-f $SO, "the module: $SO");

    my ($abi) = map { /^nginx:abi=(\S+)/ ? $1 : () }
        `cat /usr/share/nginx/src/debian/libnginx-mod.abisubstvars`;
    my $depends = `dpkg-query -W -f='\${Depends}' $PKG`;
    ok($abi && $depends =~ /(^|, )\Q$abi\E(,|$)/,
       "depends on the nginx ABI it was built against ($abi)")
        or diag "Depends: $depends";
    like(`dpkg-query -W -f='\${Provides}' nginx`, qr/\Q$abi\E/,
         'which the installed nginx provides');

    is(readlink($ENABLED), $AVAILABLE,
       'enabled: modules-enabled links to the load file');
    is(slurp($AVAILABLE),
       "load_module modules/ngx_http_iothub_twin_module.so;\n",
       'the load file loads the module from nginx\'s modules folder');
    is(abs_path('/usr/share/nginx/modules/'
                     . 'ngx_http_iothub_twin_module.so'), $SO,
       'which is /usr/lib/nginx/modules');

    for my $f (qw(gateway-node.conf iothub-twin.conf audit.conf
                  rate-limits.conf identity-sas.conf callers.json))
    {
        ok(-f "$DOC/examples/$f", "example $f installed");
    }
}

sub system_configuration {
    # the system's nginx.conf includes modules-enabled/*.conf
    my $out = `nginx -T 2>&1`;
    is($? >> 8, 0, 'nginx -t on the system configuration, module enabled')
        or diag $out;
    like($out, qr/^# configuration file \Q$ENABLED\E:\nload_module modules\/ngx_http_iothub_twin_module\.so;$/m,
         'which read the package\'s load file');
}

sub installed_module_serves {
    $t = IoTHubTwin->new;
    is($IoTHubTwin::MODULE, $SO, 'the harness loads the installed module');

    NodeExample::check($t,
                       NodeExample::http_conf($t,
                           "$DOC/examples/gateway-node.conf",
                           "$DOC/examples/audit.conf"),
                       'installed example, installed module');

    my $pid = $t->read_file('nginx.pid');
    chomp $pid;
    my $maps = slurp("/proc/$pid/maps");
    like($maps, qr/\Q$SO\E/, 'the running nginx mapped the installed .so');

    $t->finish;
}
