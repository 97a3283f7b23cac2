"""The ``mailseal`` command: one group, one module per command."""

from __future__ import annotations

import click

from mailseal import __version__
from mailseal.cli.bench import bench_command
from mailseal.cli.check import check_command
from mailseal.cli.demo import demo_command
from mailseal.cli.dmarc import dmarc_group
from mailseal.cli.genkey import genkey_command
from mailseal.cli.inspect import inspect_command
from mailseal.cli.milter import milter_command
from mailseal.cli.rotate import rotate_command
from mailseal.cli.setup import setup_command
from mailseal.cli.sign import sign_command
from mailseal.cli.spf import spf_command
from mailseal.cli.testkey import testkey_command
from mailseal.cli.verify import verify_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailseal")
def cli() -> None:
    """mailseal: DKIM signing and verification for self-hosted mail servers."""


cli.add_command(sign_command)
cli.add_command(verify_command)
cli.add_command(demo_command)
cli.add_command(milter_command)
cli.add_command(spf_command)
cli.add_command(check_command)
cli.add_command(inspect_command)
cli.add_command(bench_command)
cli.add_command(genkey_command)
cli.add_command(testkey_command)
cli.add_command(dmarc_group)
cli.add_command(setup_command)
cli.add_command(rotate_command)


def main() -> None:
    cli(prog_name="mailseal")
