"""``ssl-fed site start``'s flags and handler (docs/deployment.md documents every flag)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_site_start(args: argparse.Namespace) -> int:
    """Validate data, start the warm worker and the SuperNode."""
    from ssl_fed.deploy.site import SiteOptions, start_site

    return start_site(
        SiteOptions(
            data=Path(args.data),
            state_dir=Path(args.state_dir),
            superlink=args.superlink,
            ca=Path(args.ca),
            key=Path(args.key),
            epsilon_budget=args.epsilon_budget,
            port=args.port,
            data_format=args.data_format,
            image_size=args.image_size,
            site_id=args.site_id,
            policy=Path(args.policy) if args.policy else None,
            public_size=args.public_size,
            eval_fraction=args.eval_fraction,
            on_bad_file=args.on_bad_file,
            roster=Path(args.roster) if args.roster else None,
        )
    )


def site_start_options(p: argparse.ArgumentParser) -> None:
    """Add the optional flags of ``site start`` (docs/deployment.md documents each)."""
    p.add_argument(
        "--public-size",
        type=int,
        help="the site's DECLARED size N for the sampling rate q = B/N (e.g. rounded); the exact "
        "image count never leaves the site; without it ε is not reported to the server",
    )
    p.add_argument(
        "--port",
        type=int,
        help="local port of the SuperNode's Runtime API (127.0.0.1); default: a free port",
    )
    p.add_argument("--data-format", choices=["folder", "npz"], help="default: from --data")
    p.add_argument("--image-size", type=int, default=8, help="side used to validate the data")
    p.add_argument(
        "--site-id",
        type=int,
        help="public label 0..65535 in metrics; default: derived from the key (first 2 bytes "
        "of SHA-256 of the public key line)",
    )
    p.add_argument(
        "--roster",
        help="folder of every enrolled site's OpenSSH public key (*.pub), exchanged between "
        "the site operators: the site then signs its SecAgg keys and survivor set with its node "
        "key and refuses unsigned or inconsistent rounds (protection against a deviating server)",
    )
    p.add_argument(
        "--eval-fraction",
        type=float,
        help="hold out this fraction of a labelled folder/.npz for site-local evaluation "
        "(default: train on every image)",
    )
    p.add_argument(
        "--on-bad-file",
        choices=["error", "skip"],
        default="error",
        help="an unreadable image stops the site (error) or is skipped (skip)",
    )
