"""The ``rmxdiag`` command line: a thin, fast-starting dispatcher.

Monitoring systems call rmxdiag as a check, so start-up matters: only argparse is imported here;
each subcommand lives in ``daemon/commands/<name>.py`` and is imported only when it is chosen.
Every command module exposes ``add_arguments(parser)`` and ``execute(args) -> int``.

Exit codes (Nagios/Icinga plugin convention): 0 ok, 1 warning, 2 critical, 3 could not run.
The daemon (``serve``) additionally exits 78 (EX_CONFIG) on a bad configuration at start.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from daemon import __version__

EXIT_UNKNOWN = 3

# name -> (module under daemon.commands, one-line help). The single list of subcommands.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "one troubleshooting run of every probe of the configured targets"),
    "probe": ("probe", "MTLS handshake + SIP OPTIONS to a registrar, as the RMX does it"),
    "cert": ("cert", "judge an RMX certificate (PEM/DER/PFX/P7B/7.x directory) against Lync's rules"),
    "pcap": ("pcap", "reconstruct the SIP TLS handshakes of a capture and say where each died"),
    "alarms": ("alarms", "classify RMX alarms from saved reports, snmptrapd logs or syslog"),
    "hints": ("hints", "print the hint catalogue: codes, severity, meaning, remediation"),
    "serve": ("serve", "run the daemon: /metrics, /probe, reports and Alertmanager-driven runs"),
    "check-config": ("check_config", "validate a configuration file and show what would be probed"),
    "lab": ("lab", "the embedded demo lab: a local Front End stand-in and classic failure scenarios"),
}


def _wants_json(argv: Sequence[str]) -> bool:
    """True when the command line asks for ``--format json`` (read before argparse has run)."""
    args = list(argv)
    return any(a == "--format=json" or (a == "--format" and args[i + 1:i + 2] == ["json"])
               for i, a in enumerate(args))


def _unknown_line(detail: str) -> None:
    """The status line a monitoring system shows for a run that could not happen (text output)."""
    from daemon.firstline import status_text

    sys.stdout.write(f"UNKNOWN: {status_text(detail)}\n")
    sys.stdout.flush()


def _interrupted_early(_signum: int, _frame: object) -> None:
    """Ctrl-C while the command is still being imported: nothing to clean up yet, so no traceback."""
    os.write(2, b"rmxdiag: interrupted\n")
    os._exit(130)


def _json_error(kind: str, detail: str) -> None:
    """The error as the one JSON document on stdout that --format json promises (stderr has the line)."""
    from daemon.report import error_document

    sys.stdout.write(error_document(kind, detail))
    sys.stdout.flush()


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors; a check plugin must exit 3 (UNKNOWN) instead, with one line
    on stderr (not the whole usage block) and the UNKNOWN status line on stdout."""

    json_errors = False  # set from the raw command line: usage errors are JSON documents too
    _given: Sequence[str] = ()

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_args(args, namespace)

    def _unknown_options(self) -> list[str]:
        known = set(self._option_string_actions)
        return [a for a in self._given if a.startswith("-") and a != "-" and a.split("=", 1)[0] not in known]

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("the following arguments are required") and (unknown := self._unknown_options()):
            # argparse checks required positionals before extra options: name the real mistake
            message = f"unrecognized arguments: {' '.join(unknown)}"
        sys.stderr.write(f"{self.prog}: error: {message} (try '{self.prog} --help')\n")
        if _Parser.json_errors:
            _json_error("usage", message)
        else:
            _unknown_line(f"{self.prog}: {message}")
        sys.exit(EXIT_UNKNOWN)


def _top_parser() -> _Parser:
    parser = _Parser(
        prog="rmxdiag",
        description="Diagnose the Polycom RMX <-> Lync / Skype for Business MTLS integration.",
        epilog="Exit codes: 0 ok, 1 warning, 2 critical, 3 could not run.",
    )
    parser.add_argument("--version", action="version", version=f"rmxdiag {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (_module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    previous = signal.signal(signal.SIGINT, _interrupted_early)  # first: imports follow
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGINT, previous)


def _main(argv: Sequence[str] | None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    _Parser.json_errors = _wants_json(args_in)
    top = _top_parser()
    # Find the subcommand without building every subparser: only the chosen module is imported.
    command = next((a for a in args_in if not a.startswith("-")), None)
    if command not in SUBCOMMANDS:
        top.parse_args(args_in)  # handles --help / --version / unknown command (exit 3)
        top.print_help(sys.stderr)
        return EXIT_UNKNOWN
    index = args_in.index(command)
    pre, rest = args_in[:index], args_in[index + 1:]
    module = importlib.import_module(f"daemon.commands.{SUBCOMMANDS[command][0]}")
    parser = _Parser(prog=f"rmxdiag {command}", description=SUBCOMMANDS[command][1])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    args.verbose += top.parse_args(pre).verbose if pre else 0
    from daemon import logline  # every record one line, no credentials (daemon.logline)

    logline.configure(logging.WARNING - 10 * min(args.verbose, 2))
    return _execute(module, args)


def _execute(module: object, args: argparse.Namespace) -> int:
    from probes.model import InputError

    as_json = getattr(args, "format", None) == "json"

    def fail(kind: str, detail: str, code: int = EXIT_UNKNOWN) -> int:
        sys.stderr.write(f"rmxdiag: {'error: ' if kind != 'interrupted' else ''}{detail}\n")
        if as_json:
            _json_error(kind, detail)
        elif code == EXIT_UNKNOWN and getattr(args, "format", "text") == "text":
            _unknown_line(detail)  # a check plugin's status text: never "(No output returned from plugin)"
        elif code == EXIT_UNKNOWN and getattr(args, "format", None) == "html":
            from daemon.html.pages import error_file

            sys.stdout.write(error_file(detail))
            sys.stdout.flush()
        return code

    # From here on, Ctrl-C is a KeyboardInterrupt again: a command cleans up (stops tshark, say).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code: int = module.execute(args)  # type: ignore[attr-defined]
    except InputError as exc:
        return fail(str(exc.kind), str(exc))
    except KeyboardInterrupt:
        return fail("interrupted", "interrupted", 130)
    except BrokenPipeError:
        return EXIT_UNKNOWN
    except Exception as exc:  # the last boundary: a bug must still not print a traceback
        logging.getLogger("rmxdiag").debug("internal error", exc_info=True)
        return fail("internal", f"internal error ({type(exc).__name__}); "
                    "rerun with -vv for details and report it as a bug")
    return code


if __name__ == "__main__":
    sys.exit(main())
