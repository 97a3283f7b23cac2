#!/usr/bin/perl
# Mail::DKIM (libmail-dkim-perl) as an independent signer and verifier for
# mailseal's interoperability tests.
#
#   mail_dkim_helper.pl verify --ns 127.0.0.153 [--port 53] [FILE...]
#       prints one JSON object per message (stdin when no FILE), one a line:
#       {"file": F, "result": R, "details": D,
#        "signatures": [{"result", "details", "domain", "selector", "algorithm"}]}
#   mail_dkim_helper.pl sign --key FILE --domain D --selector S
#       [--algorithm rsa-sha256] [--method relaxed/simple] [--headers a:b:c]
#       [--timestamp EPOCH] < message
#       prints the DKIM-Signature field (name, colon, value; folded with CRLF)
#
# The message is read as lines and fed as CRLF, as Mail::DKIM requires and as
# an MTA would hand it over (LF-only input is converted).
use strict;
use warnings;
use Getopt::Long qw(GetOptionsFromArray);
use JSON::PP;
use Mail::DKIM;
use Mail::DKIM::Verifier;
use Mail::DKIM::Signer;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

binmode STDIN;
binmode STDOUT;

my $mode = shift @ARGV // '';
my %opt = (port => 53, algorithm => 'rsa-sha256', method => 'relaxed/simple');
GetOptionsFromArray(\@ARGV, \%opt, 'ns=s', 'port=i', 'key=s', 'domain=s',
    'selector=s', 'algorithm=s', 'method=s', 'headers=s', 'timestamp=i')
  or die "usage: $0 verify|sign [options] < message\n";

sub feed {
    my ($dkim, $fh) = @_;
    $fh //= \*STDIN;
    while (my $line = <$fh>) {
        $line =~ s/\r?\n\z//;
        $dkim->PRINT("$line\015\012");
    }
    $dkim->CLOSE;
}

if ($mode eq 'verify') {
    die "verify needs --ns\n" unless $opt{ns};
    my $res = Net::DNS::Resolver->new(
        nameservers => [$opt{ns}], port => $opt{port}, recurse => 1,
        udp_timeout => 5, tcp_timeout => 5, retry => 2, retrans => 1,
        searchlist => [], defnames => 0, dnsrch => 0,
    );
    Mail::DKIM::DNS::resolver($res);
    my @files = @ARGV ? @ARGV : ('-');
    foreach my $file (@files) {
        my $fh;
        if ($file eq '-') { $fh = \*STDIN }
        else { open($fh, '<:raw', $file) or die "$file: $!\n" }
        my $dkim = Mail::DKIM::Verifier->new();
        feed($dkim, $fh);
        close($fh) unless $file eq '-';
        my @sigs;
        foreach my $sig ($dkim->signatures) {
            push @sigs, {
                result    => $sig->result // '',
                details   => $sig->result_detail // '',
                domain    => $sig->domain // '',
                selector  => $sig->selector // '',
                algorithm => $sig->algorithm // '',
            };
        }
        print JSON::PP->new->canonical->encode({
            file => $file, result => $dkim->result // '',
            details => $dkim->result_detail // '', signatures => \@sigs,
        }), "\n";
    }
    exit 0;
}
elsif ($mode eq 'sign') {
    for (qw(key domain selector)) { die "sign needs --$_\n" unless $opt{$_} }
    my %args = (
        Algorithm => $opt{algorithm},
        Method    => $opt{method},
        Domain    => $opt{domain},
        Selector  => $opt{selector},
        KeyFile   => $opt{key},
    );
    $args{Timestamp} = $opt{timestamp} if defined $opt{timestamp};
    if ($opt{headers}) {
        # sign exactly these header names (one h= entry per listed name)
        my $h = $opt{headers};
        $args{Policy} = sub {
            my $signer = shift;
            $signer->add_signature(Mail::DKIM::Signature->new(
                Algorithm => $signer->algorithm,
                Method    => $signer->method,
                Domain    => $signer->domain,
                Selector  => $signer->selector,
                Headers   => $h,
                (defined $opt{timestamp} ? (Timestamp => $opt{timestamp}) : ()),
            ));
            return;
        };
    }
    my $dkim = Mail::DKIM::Signer->new(%args);
    feed($dkim);
    my $sig = $dkim->signature or die "no signature made\n";
    print $sig->as_string, "\015\012";
    exit 0;
}
die "usage: $0 verify|sign [options] < message\n";
