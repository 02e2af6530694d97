"""The `dplb` command line. `dplb check-config FILE` validates a node config the way
the node will; `run`, `ctl` and `demo` arrive with the runtime and the API."""

from __future__ import annotations

import argparse
import sys

from dplb.config import ConfigError, load_config


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except FileNotFoundError:
        print(f"dplb: {args.config}: no such file", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"dplb: {args.config}: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.config}: ok (node {cfg.node.name}, {cfg.dataplane.workers} workers, "
        f"{len(cfg.dataplane.ports)} ports, {len(cfg.services)} services)"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from dplb.node import run

    return run(args.config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dplb", description="dplb: Layer-4 full-NAT load balancer"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate a node config file")
    check.add_argument("config", help="path to the node config (YAML)")
    check.set_defaults(func=_check_config)
    run = sub.add_parser("run", help="run a node: the DPDK data plane with its control plane")
    run.add_argument("--config", required=True, help="path to the node config (YAML)")
    run.set_defaults(func=_run)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
